//! Pure protocol codecs: NMDC, ADC, the Tiger tree hash, file lists.
//!
//! Codecs are functions over bytes. They never do I/O, never read a clock and
//! never depend on anything else in the crate; unknown commands are kept raw,
//! never dropped and never fatal.

pub mod adc;
pub mod nmdc;
pub mod tth;
