//! The ADC codec: lines of the ADC protocol (hub and client-client) to
//! values and back.
//!
//! Pure: no I/O, no clocks, no state. This module owns the wire syntax of
//! ADC (ADC.txt 1.0 and the ADC-EXT fields real clients use); what to send
//! when, and what a message means for a session, belongs to the hub and peer
//! layers. Framing on `\n` is done by the connection; [`parse`] takes one line.
//!
//! # Overview
//!
//! - [`Message`] is any ADC message: a [`Header`] (type letter and the SIDs,
//!   CID or [`FeatureFilter`] it carries), a [`CommandName`], and parameters,
//!   unescaped. [`parse`] reads one from a line; [`encode`] /
//!   [`Message::encode`] write the canonical form with its `\n`; `Display`
//!   writes it without. Named parameters are read with [`Message::get`] and
//!   [`Message::get_all`] (repeated ones such as `AN` or `AD`), changed with
//!   [`Message::set`] / [`Message::remove`], and [`Message::apply_update`]
//!   folds an incremental INF into a stored one.
//! - Typed views in [`commands`] read and build the commands a client meets:
//!   [`Sup`], [`SidCmd`], [`Inf`], [`Msg`], [`Sch`], [`Res`], [`Ctm`], [`Rcm`],
//!   [`Gpa`], [`Pas`], [`Qui`], [`Sta`], [`Get`], [`Gfi`], [`Snd`];
//!   [`Command::from_message`] picks the right one, or [`Command::Raw`].
//! - Identities: [`Sid`], [`Cid`], [`Pid`] and [`AnyCid`] (CIDs of other
//!   lengths). [`password_response`] answers a hub's `IGPA`.
//! - [`features`] names features as spelt in the wild (`ADBAS0`, `ADC0`,
//!   `NAT0`...) and the sets eiskaltdcpp announces.
//!
//! ```
//! use dclua::proto::adc::{self, Command, Header, Msg, Sid};
//!
//! let msg = adc::parse(b"EMSG AAAC AAAB psst\\salice PMAAAC").unwrap();
//! let Ok(Command::Msg(m)) = Command::from_message(&msg) else { panic!() };
//! assert_eq!(m.text, "psst alice");
//!
//! let me: Sid = "AAAB".parse().unwrap();
//! let out = Msg::chat("hello world").to_message(Header::Broadcast { from: me });
//! assert_eq!(out.encode(), b"BMSG AAAB hello\\sworld\n");
//! ```

pub mod commands;
pub mod escape;
pub mod features;
pub mod header;
pub mod ident;
pub mod message;
pub mod password;
pub mod status;

pub use commands::{
    Away, Command, CommandView, Ctm, FileType, Get, Gfi, Gpa, Inf, Msg, Pas, Qui, Rcm, Res, Sch,
    SidCmd, Snd, Sta, Sup, Update, UserType, ViewError, ViewErrorKind, PROTOCOL_ADC, PROTOCOL_ADCS,
};
pub use escape::EscapeError;
pub use features::{Feature, FeatureCondition, FeatureFilter};
pub use header::{CommandName, Header, MessageType};
pub use ident::{AnyCid, Cid, IdentError, Pid, Sid};
pub use message::{encode, parse, Message, ParseError};
pub use password::{legacy_password_response, password_response, PasswordError};
pub use status::Severity;
