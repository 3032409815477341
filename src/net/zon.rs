//! [`ZonReader`]: cuts a hub's byte stream into `|`-terminated frames and
//! inflates `$ZOn` blocks on the way.
//!
//! The session reads the socket in raw mode into this reader, because a
//! `$ZOn|` frame switches *the rest of the stream* to zlib: the bytes after
//! it, already in the buffer, must go to the inflater and not to the framer.
//! When the zlib stream ends, the input left after it is plain text again.
//!
//! Memory is bounded: a frame longer than the limit is an error (the session
//! closes the connection), inflated output is produced in steps of
//! [`INFLATE_STEP`] bytes and framed before more is inflated, and a `$ZOn`
//! block may not expand beyond [`ZPipe`]'s limit. It does no I/O of its own
//! beyond [`ZonReader::read_from`], which takes bytes a connection has.

use memchr::memchr;

use super::conn::Connection;
use super::error::ConnError;
use crate::proto::nmdc::{ZPipe, ZPipeError};

/// Inflated bytes produced per step at most.
pub const INFLATE_STEP: usize = 256 * 1024;

/// Socket bytes read per `read_raw` call.
const READ_CHUNK: usize = 64 * 1024;

/// Why the stream cannot be framed any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZonError {
    /// A frame longer than the limit (without `|`).
    #[error("the hub sent a line longer than {max} bytes without '|'")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The `$ZOn` block is broken or too large.
    #[error("{0}")]
    Zlib(#[from] ZPipeError),
}

/// What one [`ZonReader::read_from`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Filled {
    /// Bytes read.
    pub bytes: usize,
    /// The peer closed its side.
    pub eof: bool,
}

/// Where the next frame was found.
enum Found {
    Plain(usize, usize),
    Inflated(usize, usize),
}

/// Frames of a hub stream; see the module docs.
#[derive(Debug)]
pub struct ZonReader {
    max_frame: usize,
    /// Bytes from the socket; `buf[pos..]` not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    /// The inflater while inside a `$ZOn` block.
    zpipe: Option<ZPipe>,
    /// Inflated bytes; `zbuf[zpos..]` not framed yet.
    zbuf: Vec<u8>,
    zpos: usize,
    /// Total `$ZOn` blocks seen (for logs and tests).
    blocks: u64,
}

impl ZonReader {
    /// A reader whose frames may be at most `max_frame` bytes long.
    pub fn new(max_frame: usize) -> ZonReader {
        ZonReader {
            max_frame,
            buf: Vec::new(),
            pos: 0,
            zpipe: None,
            zbuf: Vec::new(),
            zpos: 0,
            blocks: 0,
        }
    }

    /// Forgets everything (a new connection).
    pub fn reset(&mut self) {
        *self = ZonReader::new(self.max_frame);
    }

    /// Bytes buffered and not consumed yet (plain and inflated).
    pub fn buffered(&self) -> usize {
        (self.buf.len() - self.pos) + (self.zbuf.len() - self.zpos)
    }

    /// `$ZOn` blocks seen so far.
    pub fn zlib_blocks(&self) -> u64 {
        self.blocks
    }

    /// Appends bytes as if read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Reads what `conn` has, up to `budget` bytes.
    pub fn read_from(&mut self, conn: &mut Connection, budget: usize) -> Result<Filled, ConnError> {
        self.compact();
        let mut filled = Filled::default();
        while filled.bytes < budget {
            let len = self.buf.len();
            let want = READ_CHUNK.min(budget - filled.bytes);
            self.buf.resize(len + want, 0);
            let got = conn.read_raw(&mut self.buf[len..]);
            let n = *got.as_ref().unwrap_or(&0);
            self.buf.truncate(len + n);
            got?;
            if n == 0 {
                filled.eof = conn.is_eof();
                break;
            }
            filled.bytes += n;
        }
        Ok(filled)
    }

    /// Drops consumed bytes, so the buffer holds at most one partial frame
    /// plus what was read since.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > 4 * READ_CHUNK {
            self.buf = Vec::new();
        }
    }

    /// The next complete frame (without its `|`), `Ok(None)` when more input
    /// is needed. `$ZOn` frames are consumed here and never returned.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, ZonError> {
        let found = loop {
            if self.zpipe.is_some() || self.zpos < self.zbuf.len() {
                let pending = &self.zbuf[self.zpos..];
                if let Some(end) = memchr(b'|', pending) {
                    if end > self.max_frame {
                        return Err(ZonError::TooLarge { max: self.max_frame });
                    }
                    let start = self.zpos;
                    self.zpos += end + 1;
                    break Found::Inflated(start, start + end);
                }
                if pending.len() > self.max_frame {
                    return Err(ZonError::TooLarge { max: self.max_frame });
                }
                let Some(z) = self.zpipe.as_mut() else {
                    // An inflated tail without '|' after the block ended was
                    // moved back to the plain stream; nothing is left here.
                    self.zbuf.clear();
                    self.zpos = 0;
                    continue;
                };
                if self.zpos > 0 {
                    self.zbuf.drain(..self.zpos);
                    self.zpos = 0;
                }
                if self.pos == self.buf.len() {
                    return Ok(None);
                }
                let r = z.inflate(&self.buf[self.pos..], &mut self.zbuf, INFLATE_STEP)?;
                self.pos += r.consumed;
                if r.finished {
                    self.zpipe = None;
                    // A block holds complete commands; if its end is not one,
                    // the rest joins the plain text that follows.
                    if self.zpos < self.zbuf.len() {
                        let tail: Vec<u8> = self.zbuf.drain(self.zpos..).collect();
                        self.buf.splice(self.pos..self.pos, tail);
                    }
                    self.zbuf.clear();
                    self.zpos = 0;
                } else if r.consumed == 0 && r.produced == 0 {
                    return Ok(None);
                }
                continue;
            }
            let pending = &self.buf[self.pos..];
            match memchr(b'|', pending) {
                Some(end) => {
                    if end > self.max_frame {
                        return Err(ZonError::TooLarge { max: self.max_frame });
                    }
                    let start = self.pos;
                    self.pos += end + 1;
                    if &self.buf[start..start + end] == b"$ZOn" {
                        self.zpipe = Some(ZPipe::new());
                        self.blocks += 1;
                        continue;
                    }
                    break Found::Plain(start, start + end);
                }
                None => {
                    if pending.len() > self.max_frame {
                        return Err(ZonError::TooLarge { max: self.max_frame });
                    }
                    return Ok(None);
                }
            }
        };
        Ok(Some(match found {
            Found::Plain(s, e) => &self.buf[s..e],
            Found::Inflated(s, e) => &self.zbuf[s..e],
        }))
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

    fn drain(r: &mut ZonReader) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            out.push(String::from_utf8_lossy(f).into_owned());
        }
        out
    }

    #[test]
    fn frames_across_pushes() {
        let mut r = ZonReader::new(100);
        r.push(b"$Lock abc|<a> h");
        assert_eq!(drain(&mut r), ["$Lock abc"]);
        r.push(b"i||$Quit x");
        assert_eq!(drain(&mut r), ["<a> hi", ""]);
        r.push(b"|");
        assert_eq!(drain(&mut r), ["$Quit x"]);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn zon_block_then_plain_text() {
        let mut stream = b"$HubName h|$ZOn|".to_vec();
        let block: Vec<u8> = (0..3000)
            .flat_map(|i| format!("$MyINFO $ALL u{i} d$ $1\x01$$0$|").into_bytes())
            .collect();
        stream.extend(zlib(&block));
        stream.extend_from_slice(b"<hub> after|$ZOn|");
        stream.extend(zlib(b"$Quit u1|"));
        stream.extend_from_slice(b"$Quit u2|");
        // Byte by byte, and all at once: the same frames.
        for chunk in [1usize, 7, 4096, stream.len()] {
            let mut r = ZonReader::new(1000);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                r.push(piece);
                got.extend(drain(&mut r));
            }
            assert_eq!(got.len(), 1 + 3000 + 1 + 1 + 1, "chunk {chunk}");
            assert_eq!(got[0], "$HubName h");
            assert_eq!(got[1], "$MyINFO $ALL u0 d$ $1\x01$$0$");
            assert_eq!(got[3001], "<hub> after");
            assert_eq!(got[3002], "$Quit u1");
            assert_eq!(got[3003], "$Quit u2");
            assert_eq!(r.zlib_blocks(), 2);
        }
    }

    #[test]
    fn a_block_ending_mid_command_joins_the_plain_text() {
        let mut stream = b"$ZOn|".to_vec();
        stream.extend(zlib(b"$Quit a|$Qu"));
        stream.extend_from_slice(b"it b|");
        let mut r = ZonReader::new(100);
        r.push(&stream);
        assert_eq!(drain(&mut r), ["$Quit a", "$Quit b"]);
    }

    #[test]
    fn limits() {
        let mut r = ZonReader::new(10);
        r.push(b"0123456789|");
        assert_eq!(drain(&mut r), ["0123456789"]);
        r.push(b"0123456789");
        assert_eq!(r.next_frame(), Ok(None));
        r.push(b"x");
        assert_eq!(r.next_frame(), Err(ZonError::TooLarge { max: 10 }));

        let mut r = ZonReader::new(10);
        r.push(b"$ZOn|");
        r.push(&zlib(b"01234567890123|"));
        assert_eq!(r.next_frame(), Err(ZonError::TooLarge { max: 10 }));

        let mut r = ZonReader::new(10);
        r.push(b"$ZOn|not zlib at all");
        assert!(matches!(r.next_frame(), Err(ZonError::Zlib(ZPipeError::Corrupt(_)))));
    }
}
