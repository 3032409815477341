//! The ADC codec: lines of the ADC protocol (hub and client-client) to
//! values and back.
//!
//! Pure: no I/O, no clocks, no state. This module owns the wire syntax of
//! ADC (ADC.txt 1.0 and the ADC-EXT fields real clients use); what to send
//! when, and what a message means for a session, belongs to the hub and peer
//! layers. Framing on `\n` is done by the connection; [`parse`] takes one line.

pub mod escape;
pub mod features;
pub mod header;
pub mod ident;
pub mod message;

pub use escape::EscapeError;
pub use features::{Feature, FeatureCondition, FeatureFilter};
pub use header::{CommandName, Header, MessageType};
pub use ident::{AnyCid, Cid, IdentError, Pid, Sid};
pub use message::{encode, parse, Message, ParseError};
