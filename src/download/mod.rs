//! Downloads: the queue held in memory and in SQLite, who to connect to,
//! what each download connection fetches next, verification against the
//! TTH leaves, the final move, file lists, and the events scripts hear.
//!
//! | module | owns |
//! |---|---|
//! | [`fetch`] | one request of a download connection: a file segment, TTH leaves, a file list |
//! | `flow` | what a segment fetch and the service share: batches at the helpers, their results |
//! | `model` | options, limits (the batch size, the sync interval), a new download, events, item info, the user key |
//! | `service` | [`Downloads`]: the queue, the scheduler job, verification, the final move, lists |
//! | `assign` | what a connection fetches next |
//!
//! This file only declares the modules and re-exports; imports run one way:
//! `assign` → `fetch` → `service` → `flow` → `model`.
//!
//! The [`Downloads`] service is the peer layer's [`DownloadSide`](crate::peer::DownloadSide): when a
//! peer is identified the peer layer asks [`DownloadSide::wants`](crate::peer::DownloadSide::wants), and a
//! ready download connection asks [`DownloadSide::next`](crate::peer::DownloadSide::next) for its next
//! request until there is none. A scheduler job ticks every second: for
//! every user who has something we want, no download connection and no
//! request pending, it asks the peer layer for a connection
//! ([`Peers::ask_connection`](crate::peer::Peers::ask_connection)), with a back-off after failures.
//!
//! What a connection fetches next, in order: a file list asked of that
//! user; then, of the queued items that user has (highest priority first,
//! oldest first), the TTH leaves when the item has none yet (files up to
//! [`ROOT_ONLY`] bytes are checked against their root alone), else the
//! next segment ([`Segments`]: segments grow with a source's speed and the
//! end game splits the slowest one).
//!
//! Verification runs beside the transfer: a connection hands the bytes it
//! reads to the helper threads in batches ([`fetch`]); a helper writes a
//! batch into the temporary file and hashes its pieces; the roots come
//! back to the scheduler job, which folds them into blocks, checks each
//! against its leaf, and records the verified ranges once a sync (also on a
//! helper) has put them on disk. A block that fails drops its source and
//! stops its connection from there. The bytes at the helpers are bounded
//! ([`MAX_IN_FLIGHT`]); a connection past the bound stops reading its
//! socket until a batch comes back.
//!
//! Invariants:
//! - A byte range is recorded verified in the queue only after its blocks
//!   matched their leaves and a sync that began after they were written
//!   succeeded; on start the recorded ranges come back and are never
//!   fetched again.
//! - Bytes handed to the helpers are pending in the item's [`Segments`]
//!   until their block is verified or fails, and are never handed to
//!   another source meanwhile (so no two writes to one byte race).
//! - An item is complete only when every block is verified against leaves
//!   that rebuild its TTH; it is then moved into place without ever
//!   replacing a file (`move_into_place`), and only then called done.
//! - A source that sent a bad block, or says it does not have the file, is
//!   not asked for that file again (until a restart).
//! - Names from outside are made safe before they become paths
//!   ([`place::safe_relative`](crate::transfer::place::safe_relative)); every target stays inside its folder.
//!
//! Decisions, written down: we never ask for compressed transfers (ZLIG
//! costs CPU on both sides and gains nothing on the files people share);
//! the TTH leaves are kept in memory only and fetched again after a restart
//! (a few KiB); the file is synced on a helper thread every
//! [`SYNC_EVERY`] verified bytes and when a segment ends (the final
//! sync before the move runs on the worker); a download's batches queue
//! behind whatever else the helpers do (a share being hashed slows
//! downloads down rather than the worker); a source whose segment was taken over keeps
//! sending and its extra bytes are dropped (no reconnect); a file list is
//! read on a helper thread.
//!
//! [`Segments`]: crate::transfer::segments::Segments
//!
//! Must not: parse protocol frames or touch sockets (the peer layer does),
//! or write outside the download folders it was given.

mod assign;
pub mod fetch;
mod flow;
mod model;
mod service;

pub use model::{
    DownloadEvent, DownloadOptions, ItemId, ItemInfo, NewDownload, UserKey, BATCH, CONNECT_TIMEOUT,
    LIST_LIMITS, MAX_CONNECTIONS, MAX_IN_FLIGHT, PROGRESS_EVERY, RETRY_FIRST, RETRY_MAX, ROOT_ONLY,
    SYNC_EVERY,
};
pub use service::Downloads;
