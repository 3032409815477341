//! STA status codes: severity, error code, and a human description of the
//! codes that ADC, ADC-EXT and real clients define.
//!
//! Pure: no I/O. ADC.txt §STA: the code is three digits `xyy`, `x` the
//! severity and `yy` the error; an unknown code is still shown by its text,
//! and `y0` codes are the generic error of their category.

use std::fmt;

/// The first digit of a STA code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// `0`: success (confirms a command, `FC` names it), or plain information.
    Success,
    /// `1`: an error, but the connection stays up.
    Recoverable,
    /// `2`: a fatal error; the sender disconnects.
    Fatal,
}

impl Severity {
    /// The severity for its digit (0, 1 or 2).
    pub const fn from_digit(digit: u8) -> Option<Severity> {
        match digit {
            0 => Some(Severity::Success),
            1 => Some(Severity::Recoverable),
            2 => Some(Severity::Fatal),
            _ => None,
        }
    }

    /// The digit.
    pub const fn digit(self) -> u8 {
        match self {
            Severity::Success => 0,
            Severity::Recoverable => 1,
            Severity::Fatal => 2,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Success => "success",
            Severity::Recoverable => "error",
            Severity::Fatal => "fatal error",
        })
    }
}

/// Named STA error codes (the `yy` part).
pub mod code {
    /// Generic, show the text.
    pub const GENERIC: u8 = 0;
    /// Generic hub error.
    pub const HUB_GENERIC: u8 = 10;
    /// Hub full.
    pub const HUB_FULL: u8 = 11;
    /// Hub disabled.
    pub const HUB_DISABLED: u8 = 12;
    /// Generic login/access error.
    pub const LOGIN_GENERIC: u8 = 20;
    /// Nick invalid.
    pub const NICK_INVALID: u8 = 21;
    /// Nick taken.
    pub const NICK_TAKEN: u8 = 22;
    /// Invalid password.
    pub const BAD_PASSWORD: u8 = 23;
    /// CID taken.
    pub const CID_TAKEN: u8 = 24;
    /// Access denied to a command (`FC` names it).
    pub const COMMAND_ACCESS: u8 = 25;
    /// Registered users only.
    pub const REGISTERED_ONLY: u8 = 26;
    /// Invalid PID.
    pub const INVALID_PID: u8 = 27;
    /// Kicks/bans/disconnects, generic.
    pub const BANNED_GENERIC: u8 = 30;
    /// Permanently banned.
    pub const PERM_BANNED: u8 = 31;
    /// Temporarily banned (`TL` seconds left).
    pub const TEMP_BANNED: u8 = 32;
    /// Protocol error, generic.
    pub const PROTOCOL_GENERIC: u8 = 40;
    /// Transfer protocol unsupported (`TO` token, `PR` protocol).
    pub const PROTOCOL_UNSUPPORTED: u8 = 41;
    /// Direct connection failed (`TO` token, `PR` protocol).
    pub const CONNECT_FAILED: u8 = 42;
    /// Required INF field missing (`FM`) or bad (`FB`).
    pub const INF_MISSING: u8 = 43;
    /// Invalid state (`FC` the command).
    pub const BAD_STATE: u8 = 44;
    /// Required feature missing (`FC` the feature).
    pub const FEATURE_MISSING: u8 = 45;
    /// Invalid IP in INF (`I4`/`I6` the right one).
    pub const BAD_IP: u8 = 46;
    /// No hash support overlap between client and hub.
    pub const NO_HUB_HASH: u8 = 47;
    /// Invalid feature (ADC-EXT; `FC` lists them).
    pub const INVALID_FEATURE: u8 = 48;
    /// Client-client / file transfer error, generic.
    pub const TRANSFER_GENERIC: u8 = 50;
    /// File not available.
    pub const FILE_NOT_AVAILABLE: u8 = 51;
    /// File part not available.
    pub const FILE_PART_NOT_AVAILABLE: u8 = 52;
    /// Slots full (`QP` may give the queue position).
    pub const SLOTS_FULL: u8 = 53;
    /// No hash support overlap between clients.
    pub const NO_CLIENT_HASH: u8 = 54;
    /// Hybrid connectivity check timed out (AirDC++ HBRI).
    pub const HBRI_TIMEOUT: u8 = 55;
    /// File access denied (AirDC++).
    pub const FILE_ACCESS_DENIED: u8 = 60;
    /// Unknown user (AirDC++).
    pub const UNKNOWN_USER: u8 = 61;
    /// TLS required (AirDC++).
    pub const TLS_REQUIRED: u8 = 62;
}

/// The description of a known error code, if it is one.
pub fn known_code(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "generic",
        10 => "hub error",
        11 => "hub full",
        12 => "hub disabled",
        20 => "login or access error",
        21 => "nick invalid",
        22 => "nick taken",
        23 => "invalid password",
        24 => "CID taken",
        25 => "access denied to this command",
        26 => "registered users only",
        27 => "invalid PID",
        30 => "kicked, banned or disconnected",
        31 => "permanently banned",
        32 => "temporarily banned",
        40 => "protocol error",
        41 => "transfer protocol unsupported",
        42 => "direct connection failed",
        43 => "required INF field missing or bad",
        44 => "invalid state",
        45 => "required feature missing",
        46 => "invalid IP",
        47 => "no hash support overlap with the hub",
        48 => "invalid feature",
        50 => "transfer error",
        51 => "file not available",
        52 => "file part not available",
        53 => "slots full",
        54 => "no hash support overlap between clients",
        55 => "hybrid connectivity check timed out",
        60 => "file access denied",
        61 => "unknown user",
        62 => "TLS required",
        _ => return None,
    })
}

/// A human description of any error code: the exact one when known,
/// otherwise the generic error of its category (`x0`), otherwise "unknown
/// error".
pub fn describe_code(code: u8) -> &'static str {
    known_code(code).or_else(|| known_code(code / 10 * 10)).unwrap_or("unknown error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        assert_eq!(describe_code(code::NICK_TAKEN), "nick taken");
        assert_eq!(describe_code(29), "login or access error");
        assert_eq!(describe_code(59), "transfer error");
        assert_eq!(describe_code(77), "unknown error");
        assert_eq!(known_code(77), None);
    }

    #[test]
    fn severities() {
        for d in 0..=2 {
            assert_eq!(Severity::from_digit(d).unwrap().digit(), d);
        }
        assert_eq!(Severity::from_digit(3), None);
    }
}
