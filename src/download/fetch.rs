//! The three kinds of request a download connection makes, as [`Fetch`]es:
//! a segment of a queued file (written to its temporary file and checked
//! block by block against the leaves), the TTH leaves of a file, and a file
//! list (kept in memory, bounded).
//!
//! Each holds a handle on the service and reports back exactly once
//! (finished, refused, failed). A file segment syncs its file before the
//! blocks it verified are recorded in the queue (every
//! [`SYNC_EVERY`] bytes and at its end), so a crash never leaves a recorded
//! block that is not on disk.
//!
//! Must not: decide what to fetch next (the service does), or write
//! anywhere but the item's temporary file.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;
use std::rc::Rc;
use std::time::Instant;

use super::{Downloads, ItemId, UserKey};
use crate::peer::session::{Kind, Refused, Request, Sending};
use crate::peer::Fetch;
use crate::proto::tth::{TigerTree, Tth};
use crate::transfer::segments::SourceId;
use crate::transfer::verify::SegmentVerifier;

/// Verified bytes a segment holds before it syncs its file and records them.
pub const SYNC_EVERY: u64 = 16 << 20;

/// The largest TTHL accepted (a tree of a 1 TiB file at DC++'s granularity
/// is 12 KiB; this leaves room for finer trees).
pub const MAX_TTHL: u64 = 8 << 20;

/// The largest compressed file list accepted.
pub const MAX_LIST: u64 = 256 << 20;

/// At most this much of an announced list is allocated before it arrives.
const PREALLOCATE: u64 = 4 << 20;

/// One segment of a queued file.
pub(super) struct SegmentFetch {
    pub dl: Downloads,
    pub item: ItemId,
    pub tth: Tth,
    pub source: SourceId,
    pub user: UserKey,
    pub range: Range<u64>,
    pub tree: Rc<TigerTree>,
    pub file: File,
    pub verifier: SegmentVerifier,
    /// The next byte of the file to arrive.
    pub pos: u64,
    /// Blocks verified and written, not yet synced and recorded.
    pub unsynced: Vec<Range<u64>>,
    pub unsynced_bytes: u64,
    pub started: Instant,
    /// A block failed (already reported): the end of the connection that
    /// follows is not another failure to report.
    pub bad: bool,
}

impl SegmentFetch {
    /// Syncs the file and records the verified blocks.
    fn persist(&mut self) -> Result<(), String> {
        if self.unsynced.is_empty() {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| format!("syncing the download of {}: {e}", self.tth))?;
        let ranges = std::mem::take(&mut self.unsynced);
        self.unsynced_bytes = 0;
        self.dl.record_verified(self.item, &ranges);
        Ok(())
    }
}

impl Fetch for SegmentFetch {
    fn request(&self) -> Request {
        Request {
            kind: Kind::File,
            identifier: format!("TTH/{}", self.tth),
            start: self.range.start,
            bytes: Some(self.range.end - self.range.start),
            compressed: false,
            recursive: false,
        }
    }

    fn accept(&mut self, s: &Sending) -> Result<(), String> {
        let asked = self.range.end - self.range.start;
        if s.kind != "file" || s.start != self.range.start || s.bytes == 0 || s.bytes > asked {
            return Err(format!(
                "the peer answered {} {} from {} ({} bytes), we asked for {asked} bytes from {}",
                s.kind, s.identifier, s.start, s.bytes, self.range.start
            ));
        }
        // A peer may send less than asked (the file's end); the rest of the
        // segment is freed when this fetch finishes.
        self.range.end = s.start + s.bytes;
        Ok(())
    }

    fn data(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), String> {
        // The segment may have shrunk (a faster source took its tail) or the
        // file completed: bytes past our end are read and dropped.
        let end =
            self.dl.segment_end(self.item, self.source).unwrap_or(self.pos).min(self.range.end);
        if self.pos >= end {
            self.pos += bytes.len() as u64;
            return Ok(());
        }
        let keep = ((end - self.pos) as usize).min(bytes.len());
        let rest = bytes.len() - keep;
        bytes = &bytes[..keep];
        self.file
            .write_all(bytes)
            .map_err(|e| format!("writing the download of {}: {e}", self.tth))?;
        let checks = self.verifier.feed(&self.tree, bytes);
        self.pos += (keep + rest) as u64;
        if rest > 0 {
            // Writes resume at the right offset if the segment grows back.
            let _ = self.file.seek(SeekFrom::Start(self.pos));
        }
        self.dl.progress(self.item, self.source, &self.user, self.pos.min(end), keep as u64, now);
        for c in checks {
            if c.ok {
                self.dl.block_verified(self.item, c.range.clone());
                self.unsynced_bytes += c.range.end - c.range.start;
                self.unsynced.push(c.range);
            } else {
                let _ = self.persist();
                self.bad = true;
                self.dl.block_failed(self.item, self.source, &self.user, c.range.clone());
                return Err(format!(
                    "block {} (bytes {}..{}) of {} failed its leaf hash: the source is dropped for this file",
                    c.index, c.range.start, c.range.end, self.tth
                ));
            }
        }
        if self.unsynced_bytes >= SYNC_EVERY {
            self.persist()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, now: Instant) {
        let saved = self.persist();
        let item = self.item;
        let source = self.source;
        let bytes = self.pos.saturating_sub(self.range.start);
        let secs = now.saturating_duration_since(self.started).as_secs_f64();
        drop(self.file);
        match saved {
            Ok(()) => self.dl.segment_done(item, source, &self.user, bytes, secs),
            Err(e) => self.dl.segment_failed(item, source, &self.user, &e, false),
        }
    }

    fn refused(mut self: Box<Self>, why: &Refused) {
        let _ = self.persist();
        let lacks = matches!(why, Refused::NotAvailable(_));
        let text = match why {
            Refused::SlotsFull(_) => "no free slot".to_string(),
            Refused::NotAvailable(t) | Refused::Other(t) => t.clone(),
        };
        self.dl.segment_failed(self.item, self.source, &self.user, &text, lacks);
    }

    fn failed(mut self: Box<Self>, why: &str) {
        let _ = self.persist();
        if !self.bad {
            self.dl.segment_failed(self.item, self.source, &self.user, why, false);
        }
    }
}

/// The TTH leaves of a queued file.
pub(super) struct LeavesFetch {
    pub dl: Downloads,
    pub item: ItemId,
    pub tth: Tth,
    pub size: u64,
    pub user: UserKey,
    pub buf: Vec<u8>,
    pub expected: u64,
}

impl Fetch for LeavesFetch {
    fn request(&self) -> Request {
        Request {
            kind: Kind::Leaves,
            identifier: format!("TTH/{}", self.tth),
            start: 0,
            bytes: None,
            compressed: false,
            recursive: false,
        }
    }

    fn accept(&mut self, s: &Sending) -> Result<(), String> {
        if s.kind != "tthl" || s.start != 0 || s.bytes == 0 || s.bytes > MAX_TTHL {
            return Err(format!(
                "the peer answered our tthl request with {} {} ({} bytes)",
                s.kind, s.identifier, s.bytes
            ));
        }
        self.expected = s.bytes;
        self.buf.reserve(s.bytes as usize);
        Ok(())
    }

    fn data(&mut self, bytes: &[u8], _now: Instant) -> Result<(), String> {
        if self.buf.len() as u64 + bytes.len() as u64 > self.expected {
            return Err("the peer sent more leaves than it announced".into());
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>, _now: Instant) {
        let tree = TigerTree::from_tthl(self.size, self.tth, &self.buf);
        self.dl.leaves_done(self.item, &self.user, tree.map_err(|e| e.to_string()));
    }

    fn refused(self: Box<Self>, why: &Refused) {
        let text = match why {
            Refused::SlotsFull(_) => "no free slot".to_string(),
            Refused::NotAvailable(t) | Refused::Other(t) => t.clone(),
        };
        let lacks = matches!(why, Refused::NotAvailable(_));
        self.dl.leaves_failed(self.item, &self.user, &text, lacks);
    }

    fn failed(self: Box<Self>, why: &str) {
        self.dl.leaves_failed(self.item, &self.user, why, false);
    }
}

/// A file list (whole, or a partial `list /dir/`).
pub(super) struct ListFetch {
    pub dl: Downloads,
    pub id: u64,
    /// `None`: `files.xml.bz2`; a folder: a partial list of it.
    pub dir: Option<String>,
    pub buf: Vec<u8>,
    pub expected: u64,
}

impl Fetch for ListFetch {
    fn request(&self) -> Request {
        match &self.dir {
            None => Request {
                kind: Kind::File,
                identifier: "files.xml.bz2".into(),
                start: 0,
                bytes: None,
                compressed: false,
                recursive: false,
            },
            Some(d) => Request {
                kind: Kind::List,
                identifier: d.clone(),
                start: 0,
                bytes: None,
                compressed: false,
                recursive: false,
            },
        }
    }

    fn accept(&mut self, s: &Sending) -> Result<(), String> {
        if s.bytes > MAX_LIST {
            return Err(format!(
                "the peer's file list is {} bytes, more than the {MAX_LIST} accepted",
                s.bytes
            ));
        }
        self.expected = s.bytes;
        // What a peer announces is not allocated up front: the buffer grows
        // with what really arrives.
        self.buf.reserve(s.bytes.min(PREALLOCATE) as usize);
        Ok(())
    }

    fn data(&mut self, bytes: &[u8], _now: Instant) -> Result<(), String> {
        if self.buf.len() as u64 + bytes.len() as u64 > self.expected {
            return Err("the peer sent more of its list than it announced".into());
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>, _now: Instant) {
        self.dl.list_received(self.id, self.buf);
    }

    fn refused(self: Box<Self>, why: &Refused) {
        let text = match why {
            Refused::SlotsFull(_) => return self.dl.list_retry(self.id, "no free slot"),
            Refused::NotAvailable(t) | Refused::Other(t) => t.clone(),
        };
        self.dl.list_failed(self.id, &format!("the peer refused its file list: {text}"));
    }

    fn failed(self: Box<Self>, why: &str) {
        self.dl.list_retry(self.id, why);
    }
}
