//! The `$ZOn` (ZPipe0) inflater: after a `$ZOn|` frame, the hub sends a raw
//! zlib stream holding complete commands; when that stream ends, plain text
//! resumes in the same socket stream.
//!
//! [`ZPipe`] is a pure streaming state machine: the caller feeds it the bytes
//! that follow `$ZOn|` (the rest of its read buffer, then later reads), gets
//! decompressed bytes out for its line parser, and once the zlib stream has
//! ended, takes the input bytes after it back as plain text. It does no I/O
//! and reads no clock.
//!
//! A decompression bomb cannot eat memory: each call appends at most the
//! `max_out` bytes the caller allows, and a whole block may not expand to more
//! than its limit ([`DEFAULT_MAX_OUTPUT`] unless set with
//! [`ZPipe::with_limit`]); beyond it, [`ZPipe::inflate`] fails with
//! [`ZPipeError::TooLarge`] and the connection should be dropped.

use flate2::{Decompress, FlushDecompress, Status};

/// The default limit on the decompressed size of one `$ZOn` block: 64 MiB.
///
/// Hubs compress their user list at login; 50,000 users of about 200 bytes
/// of `$MyINFO` each make 10 MB, so this leaves a wide margin while stopping
/// a zlib bomb (zlib expands at most about 1000:1) long before it matters.
pub const DEFAULT_MAX_OUTPUT: u64 = 64 << 20;

/// Output is produced in pieces of at most this size.
const CHUNK: usize = 32 << 10;

/// Why a `$ZOn` block could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZPipeError {
    /// The block expanded beyond the limit (a decompression bomb, or a limit
    /// set too low).
    #[error("$ZOn block expands beyond {limit} bytes; refusing to inflate more")]
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// The bytes after `$ZOn|` are not a valid zlib stream.
    #[error("$ZOn block is not a valid zlib stream: {0}")]
    Corrupt(String),
}

/// What one [`ZPipe::inflate`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inflated {
    /// Input bytes used. When `finished`, `input[consumed..]` is plain NMDC
    /// text that follows the block and goes back to the line parser.
    pub consumed: usize,
    /// Bytes appended to the output.
    pub produced: usize,
    /// The zlib stream has ended; this `ZPipe` takes no more input.
    pub finished: bool,
}

impl Inflated {
    /// The plain bytes that follow the zlib stream in `input` (the slice
    /// given to the call that returned `self`); empty until `finished`.
    pub fn leftover<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        if self.finished {
            input.get(self.consumed..).unwrap_or(&[])
        } else {
            &[]
        }
    }
}

/// A streaming inflater for one `$ZOn` block.
pub struct ZPipe {
    inflater: Decompress,
    limit: u64,
    finished: bool,
}

impl std::fmt::Debug for ZPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZPipe")
            .field("total_in", &self.inflater.total_in())
            .field("total_out", &self.inflater.total_out())
            .field("limit", &self.limit)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Default for ZPipe {
    fn default() -> Self {
        ZPipe::new()
    }
}

impl ZPipe {
    /// An inflater with the [`DEFAULT_MAX_OUTPUT`] limit.
    pub fn new() -> ZPipe {
        ZPipe::with_limit(DEFAULT_MAX_OUTPUT)
    }

    /// An inflater whose block may expand to at most `limit` bytes.
    pub fn with_limit(limit: u64) -> ZPipe {
        ZPipe { inflater: Decompress::new(true), limit, finished: false }
    }

    /// Whether the zlib stream has ended.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Decompressed bytes produced so far.
    pub fn total_out(&self) -> u64 {
        self.inflater.total_out()
    }

    /// Inflates from `input`, appending at most `max_out` bytes to `out`.
    ///
    /// Returns how much input was used. If `consumed < input.len()` and the
    /// stream has not finished, the output cap was reached: call again with
    /// `&input[consumed..]`. If all input was used, feed the next bytes from
    /// the socket. Once `finished`, the rest of the input is plain text.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<Inflated, ZPipeError> {
        let start_in = self.inflater.total_in();
        let start_len = out.len();
        while !self.finished {
            let produced = out.len() - start_len;
            let room = max_out - produced;
            if room == 0 {
                break;
            }
            // Allow one byte past the limit so that crossing it is seen.
            let left = self.limit.saturating_sub(self.inflater.total_out()).saturating_add(1);
            let chunk = room.min(CHUNK).min(usize::try_from(left).unwrap_or(usize::MAX));
            let consumed = self.consumed_since(start_in);
            let (in_before, out_before) = (self.inflater.total_in(), self.inflater.total_out());
            let len = out.len();
            out.resize(len + chunk, 0);
            let status = self.inflater.decompress(
                &input[consumed..],
                &mut out[len..],
                FlushDecompress::None,
            );
            let written =
                usize::try_from(self.inflater.total_out() - out_before).unwrap_or(chunk).min(chunk);
            out.truncate(len + written);
            let status = status.map_err(|e| ZPipeError::Corrupt(e.to_string()))?;
            if self.inflater.total_out() > self.limit {
                return Err(ZPipeError::TooLarge { limit: self.limit });
            }
            match status {
                Status::StreamEnd => self.finished = true,
                Status::Ok | Status::BufError => {
                    let progressed = written > 0 || self.inflater.total_in() > in_before;
                    let input_left = self.consumed_since(start_in) < input.len();
                    // Stop when stuck, or when all input is used and the output
                    // piece was not filled (nothing is pending inside zlib).
                    if !progressed || (!input_left && written < chunk) {
                        break;
                    }
                }
            }
        }
        Ok(Inflated {
            consumed: self.consumed_since(start_in),
            produced: out.len() - start_len,
            finished: self.finished,
        })
    }

    fn consumed_since(&self, start_in: u64) -> usize {
        // Bounded by the length of the input slice of this call.
        usize::try_from(self.inflater.total_in() - start_in).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::ZlibEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn leftover_goes_back_as_plain_text() {
        let plain = b"$HubName zipped|$Hello bob|";
        let mut input = zlib(plain);
        let zlen = input.len();
        input.extend_from_slice(b"<hub> after|$Quit x|");
        let mut z = ZPipe::new();
        let mut out = Vec::new();
        let r = z.inflate(&input, &mut out, usize::MAX).unwrap();
        assert!(r.finished);
        assert_eq!(r.consumed, zlen);
        assert_eq!(out, plain);
        assert_eq!(r.leftover(&input), b"<hub> after|$Quit x|");
        // A finished pipe takes nothing more.
        let again = z.inflate(b"more", &mut out, 10).unwrap();
        assert_eq!(again, Inflated { consumed: 0, produced: 0, finished: true });
    }

    #[test]
    fn byte_at_a_time_with_tiny_output_cap() {
        let plain: Vec<u8> = (0..5000u32)
            .flat_map(|i| format!("$MyINFO $ALL u{i} x$ $1\x01$$0$|").into_bytes())
            .collect();
        let mut input = zlib(&plain);
        let zlen = input.len();
        input.extend_from_slice(b"tail");
        let mut z = ZPipe::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut calls = 0;
        while !z.is_finished() {
            calls += 1;
            assert!(calls < 10_000_000, "no progress");
            let end = (pos + 1).min(input.len());
            let r = z.inflate(&input[pos..end], &mut out, 7).unwrap();
            assert!(r.produced <= 7);
            pos += r.consumed;
        }
        assert_eq!(pos, zlen);
        assert_eq!(out, plain);
    }

    #[test]
    fn bomb_is_refused() {
        let bomb = zlib(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 20_000);
        let mut z = ZPipe::with_limit(1 << 20);
        let mut out = Vec::new();
        let mut pos = 0;
        let err = loop {
            match z.inflate(&bomb[pos..], &mut out, 64 << 10) {
                Ok(r) => {
                    assert!(!r.finished, "the bomb must not finish under the limit");
                    pos += r.consumed;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(err, ZPipeError::TooLarge { limit: 1 << 20 });
        assert!(out.len() <= (1 << 20) + 1);
    }

    #[test]
    fn corrupt_stream_is_an_error() {
        let mut z = ZPipe::new();
        let mut out = Vec::new();
        let err = z.inflate(b"this is not zlib at all", &mut out, 1024).unwrap_err();
        assert!(matches!(err, ZPipeError::Corrupt(_)), "{err:?}");
    }
}
