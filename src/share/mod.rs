//! Sharing: what this client offers to others, and the hashes that name it.
//!
//! - [`scan`] walks the share roots (folders with virtual names) and lists
//!   their files, then says which ones the hash store already knows.
//! - [`hasher`] computes Tiger trees of files on disk, in parallel on the
//!   helper threads, with progress, and notices files that change meanwhile.
//! - [`store`] keeps (path, size, mtime) → TTH root and leaves in SQLite, so
//!   that a restart hashes nothing again.
//! - [`tree`]: the in-memory share tree (virtual paths, sizes, TTHs), built
//!   from the entries the folder scan and the hasher produce.
//! - [`filelist`]: writes our `files.xml.bz2` and partial lists, and reads
//!   other users' lists with bounds against bzip2 bombs.
//! - [`index`]: answers searches (by TTH and by words) over the tree.
//!
//! Nothing here does network I/O, and nothing runs on the worker thread for
//! long: scanning, hashing and list writing are bulk work for helper threads;
//! the store is one SQLite connection used by one thread at a time. Sessions
//! ask these modules for a list or for search results and send them
//! themselves.

pub mod filelist;
pub mod hasher;
pub mod index;
pub mod scan;
pub mod store;
pub mod tree;
