//! What a segment fetch and the service share about the bytes at the helper
//! threads: a fetch's [`Flow`] and what a helper hands back for one batch
//! ([`BatchDone`]).
//!
//! A leaf below both: the fetches hand batches over, the service folds what
//! comes back.

use crate::proto::tth::NodeHash;
use crate::transfer::queue::ItemId;
use crate::transfer::ranges::RangeSet;
use crate::transfer::segments::SourceId;
use crate::transfer::verify::BlockAssembler;

use super::model::UserKey;

/// What of one segment fetch outlives it: its batches at the helpers, the
/// piece roots coming back, why its connection must stop.
///
/// Invariant: `pending` holds exactly the bytes handed over whose block was
/// neither verified nor failed; once the fetch is `over` and nothing is in
/// flight, what remains there belongs to blocks that can never complete and
/// is abandoned (free again in the item's segments).
pub(super) struct Flow {
    pub item: ItemId,
    pub source: SourceId,
    pub user: UserKey,
    pub assembler: BlockAssembler,
    /// Bytes at the helpers whose results are not back.
    pub in_flight: u64,
    pub pending: RangeSet,
    /// Why the connection must end (a block failed its leaf, a write
    /// failed), seen by the fetch at its next step.
    pub stop: Option<String>,
    /// The stop was already reported to the service's listeners.
    pub reported: bool,
    /// The fetch finished, failed or was refused.
    pub over: bool,
}

/// What a helper hands back for one batch.
pub(super) struct BatchDone {
    /// The batch's first byte in the file.
    pub start: u64,
    /// The roots of its pieces, or why writing it failed.
    pub roots: Result<Vec<NodeHash>, String>,
    /// The batch's buffer, for the next batch.
    pub buf: Vec<u8>,
}
