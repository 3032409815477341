//! The three kinds of request a download connection makes, as [`Fetch`]es:
//! a segment of a queued file (its bytes written to the temporary file and
//! checked block by block against the leaves, both on the helper threads),
//! the TTH leaves of a file, and a file list (kept in memory, bounded).
//!
//! Each holds a handle on the service and reports back exactly once
//! (finished, refused, failed).
//!
//! A segment's bytes go out in batches of [`BATCH`] bytes (whole pieces,
//! see [`crate::transfer::verify`]): a helper writes a batch at its place in
//! the file with `pwrite` and computes the roots of its pieces; the service
//! gathers the roots into blocks as the batches come back, in any order
//! (`Flow`, in `flow.rs`). So the worker thread only reads the socket and copies, and
//! both cores hash. What a connection has handed over and not got back is
//! bounded (the service's in-flight limit): past it, the connection stops
//! reading its socket until there is room ([`Fetch::ready`]).
//!
//! Must not: decide what to fetch next (the service does), or write
//! anywhere but the item's temporary file.

use std::cell::RefCell;
use std::fs::File;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::flow::Flow;
use super::model::{ItemId, UserKey, BATCH};
use super::service::Downloads;
use crate::peer::session::{Kind, Refused, Request, Sending};
use crate::peer::{Fetch, FetchError};
use crate::proto::tth::{TigerTree, Tth};
use crate::runtime::JobId;
use crate::transfer::segments::SourceId;

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
    pub flow: Rc<RefCell<Flow>>,
    pub tth: Tth,
    pub range: Range<u64>,
    pub tree: Rc<TigerTree>,
    pub file: Arc<File>,
    /// Bytes received and not handed over yet; they start at `batch_start`.
    pub batch: Vec<u8>,
    pub batch_start: u64,
    /// The next byte of the file to arrive.
    pub pos: u64,
    pub started: Instant,
}

impl SegmentFetch {
    fn ids(&self) -> (ItemId, SourceId, UserKey) {
        let f = self.flow.borrow();
        (f.item, f.source, f.user.clone())
    }

    /// Hands the batch (`keep` of its bytes) to a helper.
    fn hand_over(&mut self, keep: usize) {
        self.batch.truncate(keep);
        if self.batch.is_empty() {
            return;
        }
        let bytes = std::mem::replace(&mut self.batch, self.dl.spare_buffer());
        let start = self.batch_start;
        self.batch_start += bytes.len() as u64;
        self.dl.hash_batch(&self.flow, &self.file, start, bytes);
    }

    /// The fetch is over: what it holds of complete blocks goes to the
    /// helpers, the rest is dropped.
    fn close(&mut self) {
        let block = self.tree.block_size.max(1);
        let end = self.batch_start + self.batch.len() as u64;
        let whole = if end == self.range.end || end >= self.tree.size {
            end
        } else {
            (end - end % block).max(self.batch_start)
        };
        self.hand_over((whole - self.batch_start) as usize);
        self.flow.borrow_mut().over = true;
        self.dl.flow_settled(&self.flow);
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

    fn accept(&mut self, s: &Sending) -> Result<(), FetchError> {
        let asked = self.range.end - self.range.start;
        if s.kind != "file" || s.start != self.range.start || s.bytes == 0 || s.bytes > asked {
            return Err(FetchError::WrongSegment {
                kind: s.kind.clone(),
                identifier: s.identifier.clone(),
                start: s.start,
                bytes: s.bytes,
                asked,
                from: self.range.start,
            });
        }
        // A peer may send less than asked (the file's end); the rest of the
        // segment is freed when this fetch finishes.
        self.range.end = s.start + s.bytes;
        Ok(())
    }

    fn ready(&mut self, job: JobId) -> Result<bool, FetchError> {
        if let Some(why) = &self.flow.borrow().stop {
            return Err(FetchError::Stopped(why.clone()));
        }
        Ok(self.dl.room_for_batches(job))
    }

    fn data(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), FetchError> {
        if let Some(why) = &self.flow.borrow().stop {
            return Err(FetchError::Stopped(why.clone()));
        }
        let (item, source, user) = self.ids();
        // The segment may have shrunk (a faster source took its tail); when
        // it is gone (the source was dropped, the item cancelled) the
        // connection stops.
        let Some(end) = self.dl.segment_end(item, source) else {
            return Err(FetchError::TakenBack);
        };
        let end = end.min(self.range.end);
        let held = self.batch_start + self.batch.len() as u64;
        if held > end {
            // Taken back while in the batch: never written.
            self.batch.truncate(end.saturating_sub(self.batch_start) as usize);
        }
        let keep = end.saturating_sub(self.pos).min(bytes.len() as u64) as usize;
        self.pos += bytes.len() as u64;
        bytes = &bytes[..keep];
        while !bytes.is_empty() {
            let take = (BATCH - self.batch.len()).min(bytes.len());
            self.batch.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.batch.len() == BATCH {
                self.hand_over(BATCH);
            }
        }
        if self.batch_start + self.batch.len() as u64 == end {
            let n = self.batch.len();
            self.hand_over(n);
        }
        self.dl.progress(item, source, &user, self.batch_start, keep as u64, now);
        Ok(())
    }

    fn finish(mut self: Box<Self>, now: Instant) {
        self.close();
        let (item, source, user) = self.ids();
        let bytes = self.pos.saturating_sub(self.range.start);
        let secs = now.saturating_duration_since(self.started).as_secs_f64();
        self.dl.segment_done(item, source, &user, bytes, secs);
    }

    fn refused(mut self: Box<Self>, why: &Refused) {
        self.close();
        let (item, source, user) = self.ids();
        let lacks = matches!(why, Refused::NotAvailable(_));
        let text = match why {
            Refused::SlotsFull(_) => "no free slot".to_string(),
            Refused::NotAvailable(t) | Refused::Other(t) => t.clone(),
        };
        self.dl.segment_failed(item, source, &user, &text, lacks);
    }

    fn failed(mut self: Box<Self>, why: &str) {
        self.close();
        let (item, source, user) = self.ids();
        if !self.flow.borrow().reported {
            self.dl.segment_failed(item, source, &user, why, false);
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

    fn accept(&mut self, s: &Sending) -> Result<(), FetchError> {
        if s.kind != "tthl" || s.start != 0 || s.bytes == 0 || s.bytes > MAX_TTHL {
            return Err(FetchError::WrongLeaves {
                kind: s.kind.clone(),
                identifier: s.identifier.clone(),
                bytes: s.bytes,
            });
        }
        self.expected = s.bytes;
        self.buf.reserve(s.bytes as usize);
        Ok(())
    }

    fn data(&mut self, bytes: &[u8], _now: Instant) -> Result<(), FetchError> {
        if self.buf.len() as u64 + bytes.len() as u64 > self.expected {
            return Err(FetchError::MoreThanAnnounced { what: "leaves" });
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

    fn accept(&mut self, s: &Sending) -> Result<(), FetchError> {
        if s.bytes > MAX_LIST {
            return Err(FetchError::ListTooLarge { bytes: s.bytes, limit: MAX_LIST });
        }
        self.expected = s.bytes;
        // What a peer announces is not allocated up front: the buffer grows
        // with what really arrives.
        self.buf.reserve(s.bytes.min(PREALLOCATE) as usize);
        Ok(())
    }

    fn data(&mut self, bytes: &[u8], _now: Instant) -> Result<(), FetchError> {
        if self.buf.len() as u64 + bytes.len() as u64 > self.expected {
            return Err(FetchError::MoreThanAnnounced { what: "of its list" });
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
