//! Sharing: the share tree, our own file list and the answers to searches.
//!
//! - [`tree`]: the in-memory share tree (virtual paths, sizes, TTHs), built
//!   from the entries the folder scan and the hasher produce.
//! - [`filelist`]: writes our `files.xml.bz2` and partial lists, and reads
//!   other users' lists with bounds against bzip2 bombs.
//! - [`index`]: answers searches (by TTH and by words) over the tree.
//!
//! Nothing here does network I/O; sessions ask these modules for a list or
//! for search results and send them themselves.

pub mod filelist;
pub mod index;
pub mod tree;
