//! Typed views of the ADC commands a client meets: read one out of a
//! [`Message`](super::Message) (`from_message`) or build a [`Message`](super::Message) from one
//! (`to_message`, given the [`Header`](super::Header) to route it with).
//!
//! Pure: no I/O. Views borrow their text from the message they were read
//! from, so reading one allocates nothing beyond small lists (search terms,
//! features). Unknown named parameters are ignored by a view but stay in the
//! message; unknown commands come out as [`Command::Raw`].
//!
//! Views are strict about the fields they read (a bad number is an error
//! naming the field); [`Inf::from_message_lossy`] is there for user lists,
//! where one odd field must not hide a user.
//!
//! One file per command family, as in `proto::nmdc`: [`session`] (`SUP`,
//! `SID`, `INF`, `GPA`/`PAS`, `QUI`, `STA`), [`chat`] (`MSG`), [`search`]
//! (`SCH`, `RES`), [`connection`] (`CTM`, `RCM`), [`transfer`] (`GET`,
//! `GFI`, `SND`) and `any` ([`Command`]); `view` holds what they share (the
//! [`CommandView`] contract, [`ViewError`], the field readers and writers).
//! This file only declares them and re-exports.

mod any;
pub mod chat;
pub mod connection;
pub mod search;
pub mod session;
pub mod transfer;
mod view;

pub use any::Command;
pub use chat::Msg;
pub use connection::{Ctm, Rcm, PROTOCOL_ADC, PROTOCOL_ADCS};
pub use search::{FileType, Res, Sch};
pub use session::{Away, Gpa, Inf, Pas, Qui, SidCmd, Sta, Sup, UserType};
pub use transfer::{transfer_type, Get, Gfi, Snd};
pub use view::{CommandView, Update, ViewError, ViewErrorKind};
