//! Sharing: what this client offers to others, and the hashes that name it.
//!
//! - [`scan`] walks the share roots (folders with virtual names) and lists
//!   their files, then says which ones the hash store already knows.
//! - [`hasher`] computes Tiger trees of files on disk, in parallel on the
//!   helper threads, with progress, and notices files that change meanwhile.
//! - [`store`] keeps (path, size, mtime) → TTH root and leaves in SQLite, so
//!   that a restart hashes nothing again.
//!
//! Nothing here runs on the worker thread for long: scanning and hashing are
//! bulk work for helper threads; the store is one SQLite connection used by
//! one thread at a time.

pub mod hasher;
pub mod scan;
pub mod store;
