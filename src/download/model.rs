//! The downloads' vocabulary: options and limits, a new download, the
//! events scripts hear, what an item looks like from outside, and how a
//! user is keyed. No state, no behaviour beyond the defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::peer::PeerUser;
use crate::proto::tth::Tth;
use crate::share::filelist::ReadLimits;
use crate::transfer::queue::{Priority, Source};

pub use crate::transfer::queue::ItemId;

/// Verified bytes of an item written before the file is synced and they are
/// recorded in the queue.
pub const SYNC_EVERY: u64 = 16 << 20;

/// The bytes a segment hands to a helper at once (a multiple of every piece
/// size: pieces are at most this and powers of two).
pub const BATCH: usize = crate::transfer::verify::MAX_PIECE as usize;

/// Files up to this size are checked against their TTH alone (one block):
/// asking for their leaves would cost a round trip for nothing.
pub const ROOT_ONLY: u64 = 64 * 1024;
/// The bounds of a browsed list: 256 MiB of XML (a list of a million
/// files is about 100 MiB) and two million entries. The reader holds at
/// most this much XML text at once, so a bomb costs at most that.
pub const LIST_LIMITS: ReadLimits =
    ReadLimits { max_xml_bytes: 256 << 20, max_entries: 2_000_000, max_depth: 256 };

/// How long a connection we asked for may take to come.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);
/// The first wait after a failed connection to a user; doubled each time.
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between two tries.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// Download events `download_progress` at most this often per item.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The most bytes at the helper threads at once, all connections together
/// (16 batches: enough to keep every helper busy, little memory).
pub const MAX_IN_FLIGHT: u64 = 16 * BATCH as u64;

/// How downloads are set up (from the settings).
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Where downloads go when no folder is given.
    pub dir: PathBuf,
    /// Download connections open at once, at most.
    pub max_connections: usize,
    /// The download bandwidth limit in bytes per second; 0 = none.
    pub limit: u64,
    /// The shortest segment asked of one source, in bytes.
    pub min_segment: u64,
}

/// Download connections at once when the `download_slots` setting says
/// "no limit" (0).
pub const MAX_CONNECTIONS: usize = 64;

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            dir: PathBuf::from("downloads"),
            max_connections: 8,
            limit: 0,
            min_segment: crate::transfer::segments::MIN_SEGMENT,
        }
    }
}

/// A user as the queue knows them: the hub's address and the CID (ADC) or
/// the nick (NMDC).
pub type UserKey = (String, String);

pub(super) fn key_of(u: &PeerUser) -> UserKey {
    (u.hub_url.clone(), u.cid.clone().unwrap_or_else(|| u.nick.clone()))
}

/// A file to download.
#[derive(Debug, Clone)]
pub struct NewDownload {
    /// The file's TTH.
    pub tth: Tth,
    /// Its size.
    pub size: u64,
    /// Its name (made safe here; may hold `/` for subfolders).
    pub name: String,
    /// The folder, relative to the download folder (made safe here); `None`
    /// for the download folder itself.
    pub dir: Option<String>,
    /// An absolute folder (trusted callers only), instead of `dir`.
    pub abs_dir: Option<PathBuf>,
    /// How urgent.
    pub priority: Priority,
    /// Who has it.
    pub sources: Vec<Source>,
}

/// What subscribers hear.
#[derive(Debug, Clone)]
pub enum DownloadEvent {
    /// A connection started fetching an item (or its leaves).
    Started {
        /// The item.
        item: ItemInfo,
        /// The source's nick.
        nick: String,
        /// Over TLS.
        tls: bool,
    },
    /// Throttled progress of an item.
    Progress(ItemInfo),
    /// Verified and moved into place.
    Finished {
        /// The item.
        item: ItemInfo,
        /// Where it went.
        path: PathBuf,
    },
    /// Given up on (or a source failed: `final_` false).
    Failed {
        /// The item.
        item: ItemInfo,
        /// Why.
        reason: String,
        /// The item itself failed (not only one source).
        final_: bool,
    },
    /// Items were added, removed or changed state.
    QueueChanged,
}

/// An item as scripts see it.
#[derive(Debug, Clone)]
pub struct ItemInfo {
    /// Its key.
    pub id: ItemId,
    /// Its TTH.
    pub tth: Tth,
    /// Its size.
    pub size: u64,
    /// Where it goes.
    pub target: PathBuf,
    /// `queued`, `running`, `done`, `failed`.
    pub state: &'static str,
    /// Bytes verified.
    pub verified: u64,
    /// Bytes received (verified or not yet), those verified before a
    /// restart included.
    pub received: u64,
    /// Bytes received since this start (what a resume re-fetched).
    pub fetched: u64,
    /// Sources, with the bytes each sent since this start.
    pub sources: Vec<(Source, u64)>,
    /// Download connections working on it.
    pub running: usize,
    /// Priority name.
    pub priority: &'static str,
    /// The last error.
    pub error: Option<String>,
    /// Where it went, once done.
    pub path: Option<PathBuf>,
}
