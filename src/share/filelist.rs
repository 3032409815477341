//! File lists: writing our own `files.xml(.bz2)` and partial lists from the
//! share tree, and reading other users' lists with hard bounds.
//!
//! This module owns the file-list format (ADC.txt §Files, the XML schema
//! there and the DC++ conventions in `reference/protocols.md` §1.8). It does
//! no network or disk I/O of its own: the writer returns bytes, the reader
//! takes any `Read`. It must not change the tree.
//!
//! # Writing
//!
//! ```text
//! <?xml version="1.0" encoding="utf-8" standalone="yes"?>
//! <FileListing Version="1" CID="…" Base="/" Generator="dclua 0.1.0">
//! <Directory Name="Music">
//! <File Name="Help.mp3" Size="1234" TTH="…"/>
//! </Directory>
//! </FileListing>
//! ```
//!
//! - UTF-8, no BOM; attribute values escape `& < > " '`. One element per
//!   line and **no indentation**: readers ignore it, and bzip2 compresses the
//!   list 7% faster without it (to the same size). Names that XML 1.0
//!   cannot carry never reach the tree (see `share::tree`).
//! - Only hashed files and folders with a hashed file below them are listed
//!   (ADC: a name in the share must be identified by a hash).
//! - Inside a folder, subfolders come first, then files, each sorted
//!   case-insensitively (the tree's order).
//! - Partial lists (ADC `GET list /dir/ 0 -1 [RE1]`): `Base` is the folder's
//!   canonical path (`/Music/`), the list holds its content, and unexpanded
//!   subfolders are written as `<Directory Name="…" Incomplete="1"/>`. With
//!   `recursive` everything below is expanded.
//!
//! **Parallel compression.** Generating and bzip2-compressing a million
//! entries on one core takes several seconds, so the list is cut into chunks
//! of about [`CHUNK_ENTRIES`] entries, and worker threads (a
//! `std::thread::scope`, as many as [`ListOptions::threads`]) each render a
//! chunk's XML and compress it into its *own complete bzip2 stream*. The
//! output is the streams concatenated in order: a multi-stream bzip2 file,
//! exactly what `pbzip2` writes. `bzip2 -d`, DC++, ncdc (since 1.20) and
//! this module's reader decode all streams; the price is a slightly worse
//! ratio at the chunk edges. Level [`BZIP2_LEVEL`] (700 kB blocks) is 5%
//! faster than level 9 for 0.6% more bytes on list data (measured with
//! `bzip2 -N` on the benchmark's list). The caller chooses the thread count; the
//! runtime's helper pool is not used because the work must finish as one
//! result and scoped threads can borrow the tree without copying it.
//!
//! # Reading
//!
//! [`read_listing`] streams the XML (quick-xml) out of a bzip2 decoder that
//! decodes every stream (`MultiBzDecoder`), or out of plain XML, told apart
//! by the `BZh` magic. Bounds from [`ReadLimits`] cap the decompressed bytes
//! (bzip2 bombs), the number of entries and the nesting depth, so a hostile
//! list cannot exhaust memory. A BOM is accepted, invalid UTF-8 is replaced
//! rather than fatal (old NMDC lists), and a list with a `.` or `..` name, or
//! a name holding `/`, is rejected as a whole, as ADC requires. Malformed
//! entries (no name, a size that is not a number) are skipped and counted,
//! and so are names repeating another one case-insensitively in the same
//! folder (the first one stays).

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, BufReader, Cursor, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use quick_xml::events::{BytesStart, Event};

use crate::proto::tth::Tth;
use crate::share::tree::{fold, NodeId, ShareTree};

/// The `Generator` attribute of our lists.
pub const GENERATOR: &str = concat!("dclua ", env!("CARGO_PKG_VERSION"));

/// Entries per independently compressed chunk (see the module docs).
pub const CHUNK_ENTRIES: usize = 16 * 1024;

/// The bzip2 level (block size in units of 100 kB) of our lists.
pub const BZIP2_LEVEL: u32 = 7;

/// Everything that can go wrong writing or reading a file list.
#[derive(Debug, thiserror::Error)]
pub enum FileListError {
    /// A partial list was asked for a folder that is not shared.
    #[error("no shared folder {0:?} for a file list")]
    NoSuchFolder(String),
    /// Compressing the list failed.
    #[error("compressing the file list: {0}")]
    Compress(io::Error),
    /// A worker thread generating the list died.
    #[error("a file-list worker thread panicked")]
    Worker,
    /// Reading the list failed.
    #[error("reading the file list: {0}")]
    Io(io::Error),
    /// The XML is malformed.
    #[error("malformed file list XML near byte {position}: {message}")]
    Xml {
        /// Position in the decompressed XML.
        position: u64,
        /// What the parser said.
        message: String,
    },
    /// The document is XML but not a file list.
    #[error("not a file list: the root element is <{0}>, expected <FileListing>")]
    NotAFileList(String),
    /// The document ended before `</FileListing>`.
    #[error("the file list is truncated (no closing </FileListing>)")]
    Truncated,
    /// More decompressed bytes than allowed: most likely a bzip2 bomb.
    #[error("the file list decompresses to more than {limit} bytes; refused")]
    TooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// More entries than allowed.
    #[error("the file list holds more than {limit} entries; refused")]
    TooManyEntries {
        /// The limit in force.
        limit: u64,
    },
    /// Folders nested deeper than allowed.
    #[error("the file list nests folders deeper than {limit}; refused")]
    TooDeep {
        /// The limit in force.
        limit: usize,
    },
    /// A name that must make us ignore the list (`.`, `..`, or holding `/`).
    #[error("the file list contains the forbidden name {0:?}; the whole list is ignored")]
    ForbiddenName(String),
}

// ===================================================================
// Writing
// ===================================================================

/// What list to write.
#[derive(Debug, Clone)]
pub struct ListOptions<'a> {
    /// Our CID, base32 (the `CID` attribute).
    pub cid: &'a str,
    /// The folder to list: `/` for the whole share, or `/Root/dir/`.
    pub base: &'a str,
    /// Expand every folder below `base` (full lists, ADC `RE1`); otherwise
    /// subfolders of `base` are written as `Incomplete="1"` stubs.
    pub recursive: bool,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
}

impl<'a> ListOptions<'a> {
    /// The full list (`files.xml.bz2`): base `/`, recursive, all cores.
    pub fn full(cid: &'a str) -> ListOptions<'a> {
        ListOptions { cid, base: "/", recursive: true, threads: 0 }
    }

    /// A partial list of one folder (ADC `GET list <base>`).
    pub fn partial(cid: &'a str, base: &'a str, recursive: bool) -> ListOptions<'a> {
        ListOptions { cid, base, recursive, threads: 0 }
    }
}

/// Writes the list as uncompressed XML (what ADC `GET list` sends).
pub fn write_xml(tree: &ShareTree, opts: &ListOptions<'_>) -> Result<Vec<u8>, FileListError> {
    let parts = generate(tree, opts, false)?;
    Ok(parts.concat())
}

/// Writes the list as multi-stream bzip2 (`files.xml.bz2`).
pub fn write_bz2(tree: &ShareTree, opts: &ListOptions<'_>) -> Result<Vec<u8>, FileListError> {
    let parts = generate(tree, opts, true)?;
    Ok(parts.concat())
}

/// One piece of the list in document order; see `plan`.
#[derive(Clone, Copy, Debug)]
enum Piece {
    /// `<Directory Name="…">`, content follows.
    Open(NodeId),
    /// `<Directory Name="…" Incomplete="1"/>`.
    Stub(NodeId),
    /// The listed files among `children(dir)[from..to]`.
    Files(NodeId, u32, u32),
    /// `</Directory>`.
    Close,
}

/// A run of pieces rendered (and compressed) as one unit.
#[derive(Debug, Default)]
struct Chunk {
    pieces: Vec<Piece>,
    first: bool,
    last: bool,
}

fn generate(
    tree: &ShareTree,
    opts: &ListOptions<'_>,
    compress: bool,
) -> Result<Vec<Vec<u8>>, FileListError> {
    let base = match tree.lookup(opts.base) {
        Some(id) if id == tree.top() || (tree.is_dir(id) && tree.is_listed(id)) => id,
        _ => return Err(FileListError::NoSuchFolder(opts.base.to_string())),
    };
    let base_path =
        if base == tree.top() { "/".to_string() } else { format!("/{}/", tree.path(base)) };
    let mut header = Vec::with_capacity(256);
    header.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>\n");
    header.extend_from_slice(b"<FileListing Version=\"1\" CID=\"");
    escape_attr(opts.cid, &mut header);
    header.extend_from_slice(b"\" Base=\"");
    escape_attr(&base_path, &mut header);
    header.extend_from_slice(b"\" Generator=\"");
    escape_attr(GENERATOR, &mut header);
    header.extend_from_slice(b"\">\n");

    let chunks = plan(tree, base, opts.recursive);
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(chunks.len())
    .max(1);

    let work = |chunk: &Chunk, xml: &mut Vec<u8>| -> Result<Vec<u8>, FileListError> {
        xml.clear();
        if chunk.first {
            xml.extend_from_slice(&header);
        }
        render(tree, chunk, xml);
        if chunk.last {
            xml.extend_from_slice(b"</FileListing>\n");
        }
        if compress {
            let out = Vec::with_capacity(xml.len() / 6 + 64);
            let mut enc = bzip2::write::BzEncoder::new(out, bzip2::Compression::new(BZIP2_LEVEL));
            enc.write_all(xml).map_err(FileListError::Compress)?;
            enc.finish().map_err(FileListError::Compress)
        } else {
            Ok(xml.clone())
        }
    };

    let mut results: Vec<Option<Vec<u8>>> = (0..chunks.len()).map(|_| None).collect();
    if threads == 1 {
        let mut xml = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            results[i] = Some(work(chunk, &mut xml)?);
        }
    } else {
        let next = AtomicUsize::new(0);
        let outcomes = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        let mut xml = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(chunk) = chunks.get(i) else { break };
                            done.push((i, work(chunk, &mut xml)));
                        }
                        done
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
        });
        for outcome in outcomes {
            for (i, part) in outcome.map_err(|_| FileListError::Worker)? {
                results[i] = Some(part?);
            }
        }
    }
    results.into_iter().map(|r| r.ok_or(FileListError::Worker)).collect()
}

/// Cuts the list of `base` into chunks of about [`CHUNK_ENTRIES`] entries.
fn plan(tree: &ShareTree, base: NodeId, recursive: bool) -> Vec<Chunk> {
    let mut chunks = vec![Chunk { first: true, ..Chunk::default() }];
    let mut weight = 0usize;
    // Adds a piece, starting a new chunk when the current one is full.
    let mut push = |piece: Piece, w: usize| {
        if weight >= CHUNK_ENTRIES {
            chunks.push(Chunk::default());
            weight = 0;
        }
        weight += w;
        if let Some(c) = chunks.last_mut() {
            c.pieces.push(piece);
        }
    };
    // Frames of open folders: (folder, index of the next child to look at).
    let mut stack: Vec<(NodeId, usize)> = vec![(base, 0)];
    while let Some(frame) = stack.last_mut() {
        let (dir, next) = *frame;
        let children = tree.children(dir);
        let sub = children[next..]
            .iter()
            .position(|&c| tree.is_dir(c) && tree.is_listed(c))
            .map(|p| next + p);
        if let Some(j) = sub {
            frame.1 = j + 1;
            let c = children[j];
            if recursive {
                push(Piece::Open(c), 1);
                stack.push((c, 0));
            } else {
                push(Piece::Stub(c), 1);
            }
            continue;
        }
        // No subfolder left: the files, cut into pieces that fit a chunk.
        let total = children.len();
        let mut from = 0usize;
        while from < total {
            let to = (from + CHUNK_ENTRIES).min(total);
            push(Piece::Files(dir, from as u32, to as u32), to - from);
            from = to;
        }
        stack.pop();
        if !stack.is_empty() {
            push(Piece::Close, 1);
        }
    }
    if let Some(c) = chunks.last_mut() {
        c.last = true;
    }
    chunks
}

fn render(tree: &ShareTree, chunk: &Chunk, out: &mut Vec<u8>) {
    let mut tth_buf = [0u8; 39];
    for piece in &chunk.pieces {
        match *piece {
            Piece::Open(d) | Piece::Stub(d) => {
                out.extend_from_slice(b"<Directory Name=\"");
                escape_attr(tree.name(d), out);
                if matches!(piece, Piece::Open(_)) {
                    out.extend_from_slice(b"\">\n");
                } else {
                    out.extend_from_slice(b"\" Incomplete=\"1\"/>\n");
                }
            }
            Piece::Close => out.extend_from_slice(b"</Directory>\n"),
            Piece::Files(d, from, to) => {
                let children = tree.children(d);
                let range = children.get(from as usize..to as usize).unwrap_or(&[]);
                for &f in range {
                    let Some(tth) = tree.tth(f) else { continue };
                    out.extend_from_slice(b"<File Name=\"");
                    escape_attr(tree.name(f), out);
                    out.extend_from_slice(b"\" Size=\"");
                    push_u64(out, tree.size(f));
                    out.extend_from_slice(b"\" TTH=\"");
                    data_encoding::BASE32_NOPAD.encode_mut(tth.as_bytes(), &mut tth_buf);
                    out.extend_from_slice(&tth_buf);
                    out.extend_from_slice(b"\"/>\n");
                }
            }
        }
    }
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `s` escaped for a double-quoted XML attribute.
pub fn escape_attr(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\'' => b"&apos;",
            // Tabs and line breaks would be normalised to spaces by readers.
            b'\t' => b"&#9;",
            b'\n' => b"&#10;",
            b'\r' => b"&#13;",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(rep);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

// ===================================================================
// Reading
// ===================================================================

/// Bounds for [`read_listing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Maximum decompressed XML bytes (default 1 GiB: about ten million
    /// entries; a real list of that size would be extraordinary).
    pub max_xml_bytes: u64,
    /// Maximum files plus folders (default 5,000,000).
    pub max_entries: u64,
    /// Maximum folder nesting (default 256).
    pub max_depth: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits { max_xml_bytes: 1 << 30, max_entries: 5_000_000, max_depth: 256 }
    }
}

/// A file list read from another user (or our own, in tests).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// The `Version` attribute.
    pub version: Option<String>,
    /// The `CID` attribute (absent in old NMDC lists).
    pub cid: Option<String>,
    /// The `Base` attribute (`/` when absent).
    pub base: String,
    /// The `Generator` attribute.
    pub generator: Option<String>,
    /// The content of `base`; its name is empty.
    pub root: ListDir,
    /// Malformed entries that were skipped.
    pub skipped: u64,
    /// Entries skipped because their name repeats another one
    /// case-insensitively in the same folder.
    pub duplicates: u64,
}

/// A folder of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListDir {
    /// The folder name.
    pub name: String,
    /// `Incomplete="1"`: the content was not sent (partial lists).
    pub incomplete: bool,
    /// Subfolders in list order.
    pub dirs: Vec<ListDir>,
    /// Files in list order.
    pub files: Vec<ListFile>,
}

/// A file of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFile {
    /// The file name (boxed: no capacity word, 8 bytes less per file).
    pub name: Box<str>,
    /// Size in bytes.
    pub size: u64,
    /// The TTH, when present and valid.
    pub tth: Option<Tth>,
}

impl ListDir {
    /// Files in this folder and below.
    pub fn total_files(&self) -> u64 {
        self.files.len() as u64 + self.dirs.iter().map(ListDir::total_files).sum::<u64>()
    }

    /// Total size of the files in this folder and below.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum::<u64>()
            + self.dirs.iter().map(ListDir::total_size).sum::<u64>()
    }

    /// Finds a subfolder by `/`-separated path, case-insensitively.
    pub fn find_dir(&self, path: &str) -> Option<&ListDir> {
        let mut cur = self;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            let want = fold(name);
            cur = cur.dirs.iter().find(|d| fold(&d.name) == want)?;
        }
        Some(cur)
    }

    /// Drops entries whose name repeats an earlier one case-insensitively
    /// (folders and files share one namespace); returns how many.
    fn dedupe(&mut self) -> u64 {
        if self.dirs.len() + self.files.len() < 2 {
            return 0;
        }
        let mut seen: HashSet<String> = HashSet::with_capacity(self.dirs.len() + self.files.len());
        let before = self.dirs.len() + self.files.len();
        self.dirs.retain(|d| seen.insert(fold(&d.name)));
        self.files.retain(|f| seen.insert(fold(&f.name)));
        (before - self.dirs.len() - self.files.len()) as u64
    }
}

/// A file of a [`Listing`] that answers a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListHit<'l> {
    /// Its path from the listing's root, `/`-separated with a leading `/`
    /// (the one result-path form of [`crate::search`]).
    pub path: String,
    /// The file (`None` for a folder that matched).
    pub file: Option<&'l ListFile>,
}

impl Listing {
    /// The entries that answer `query`, in list order, at most `limit`:
    /// the same rules as the share index (every include term somewhere in
    /// the path, no exclude term anywhere, size, type and extensions on
    /// files; folders only for untyped, unsized searches), so a browsed
    /// list and a search on the hub agree. A TTH query finds the files
    /// with that root. Runs folder by folder, folding each name once.
    pub fn search(&self, query: &crate::search::Query, limit: usize) -> Vec<ListHit<'_>> {
        let mut out = Vec::new();
        if limit == 0 {
            return out;
        }
        if let Some(tth) = &query.tth {
            walk_files(&self.root, &mut String::new(), &mut |path, f| {
                if f.tth.as_ref() == Some(tth) {
                    out.push(ListHit { path: path.to_string(), file: Some(f) });
                }
                out.len() < limit
            });
            return out;
        }
        let Some(m) = crate::search::Matcher::new(query) else { return out };
        let mut path = String::new();
        let mut folded = String::new();
        search_dir(&self.root, &m, 0, &mut path, &mut folded, limit, &mut out);
        out
    }
}

/// Calls `f(path, file)` for every file below `dir` until it returns false;
/// whether it was never told to stop.
fn walk_files<'l>(
    dir: &'l ListDir,
    path: &mut String,
    f: &mut impl FnMut(&str, &'l ListFile) -> bool,
) -> bool {
    let len = path.len();
    for file in &dir.files {
        path.push('/');
        path.push_str(&file.name);
        let go_on = f(path, file);
        path.truncate(len);
        if !go_on {
            return false;
        }
    }
    for sub in &dir.dirs {
        path.push('/');
        path.push_str(&sub.name);
        let go_on = walk_files(sub, path, f);
        path.truncate(len);
        if !go_on {
            return false;
        }
    }
    true
}

/// The search of [`Listing::search`] below `dir`, whose path holds the
/// include terms of `mask`; whether the limit is not yet reached.
fn search_dir<'l>(
    dir: &'l ListDir,
    m: &crate::search::Matcher,
    mask: u64,
    path: &mut String,
    folded: &mut String,
    limit: usize,
    out: &mut Vec<ListHit<'l>>,
) -> bool {
    let len = path.len();
    for file in &dir.files {
        if !m.file_ok(&file.name, file.size) {
            continue;
        }
        crate::search::fold_into(&file.name, folded);
        let (got, excluded) = m.name_terms(folded, mask);
        if excluded || got != m.full {
            continue;
        }
        path.push('/');
        path.push_str(&file.name);
        out.push(ListHit { path: path.clone(), file: Some(file) });
        path.truncate(len);
        if out.len() >= limit {
            return false;
        }
    }
    for sub in &dir.dirs {
        crate::search::fold_into(&sub.name, folded);
        let (got, excluded) = m.name_terms(folded, mask);
        if excluded {
            continue;
        }
        path.push('/');
        path.push_str(&sub.name);
        if m.dirs && got == m.full {
            out.push(ListHit { path: path.clone(), file: None });
            if out.len() >= limit {
                return false;
            }
        }
        let go_on = search_dir(sub, m, got, path, folded, limit, out);
        path.truncate(len);
        if !go_on {
            return false;
        }
    }
    true
}

/// Counts decompressed bytes and fails past the limit.
struct Capped<R> {
    inner: R,
    limit: u64,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded {
            return Err(io::Error::other("file list size limit exceeded"));
        }
        // Ask for at most one byte more than allowed: enough to notice.
        let want =
            buf.len().min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(io::Error::other("file list size limit exceeded"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

type XmlReader<'r> = quick_xml::Reader<BufReader<Capped<Box<dyn Read + 'r>>>>;

/// Reads a file list, bzip2-compressed (`BZh` magic, any number of streams)
/// or plain XML, within `limits`.
pub fn read_listing<R: Read>(mut input: R, limits: &ReadLimits) -> Result<Listing, FileListError> {
    // Peek at the magic without assuming how much one read returns.
    let mut magic = [0u8; 3];
    let mut got = 0;
    while got < magic.len() {
        match input.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FileListError::Io(e)),
        }
    }
    let whole = Cursor::new(magic[..got].to_vec()).chain(input);
    let source: Box<dyn Read + '_> = if magic[..got] == *b"BZh" {
        Box::new(bzip2::read::MultiBzDecoder::new(whole))
    } else {
        Box::new(whole)
    };
    let capped = Capped {
        inner: source,
        limit: limits.max_xml_bytes,
        left: limits.max_xml_bytes,
        exceeded: false,
    };
    let mut reader: XmlReader<'_> =
        quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, capped));
    reader.config_mut().trim_text(true);
    Parser { limits, entries: 0, listing: Listing::default(), stack: Vec::new(), skip: 0 }
        .run(&mut reader)
}

struct Parser<'l> {
    limits: &'l ReadLimits,
    entries: u64,
    listing: Listing,
    /// Open folders; `stack[0]` is the listing's root once `<FileListing>`
    /// was seen.
    stack: Vec<ListDir>,
    /// Depth inside elements we skip (unknown ones, a `File`'s children).
    skip: usize,
}

impl Parser<'_> {
    fn run(mut self, reader: &mut XmlReader<'_>) -> Result<Listing, FileListError> {
        let mut buf = Vec::with_capacity(1024);
        let mut started = false;
        loop {
            let event = match reader.read_event_into(&mut buf) {
                Ok(e) => e,
                Err(e) => return Err(xml_error(reader, e)),
            };
            match event {
                Event::Start(_) if self.skip > 0 => self.skip += 1,
                Event::End(_) if self.skip > 0 => self.skip -= 1,
                Event::Empty(_) if self.skip > 0 => {}
                Event::Start(ref e) | Event::Empty(ref e) if !started => {
                    if e.name().as_ref() != b"FileListing" {
                        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                        return Err(FileListError::NotAFileList(name));
                    }
                    self.root_attributes(e, reader)?;
                    started = true;
                    self.stack.push(ListDir::default());
                    if matches!(event, Event::Empty(_)) {
                        return Ok(self.finish());
                    }
                }
                Event::Start(e) => self.open(&e, true, reader)?,
                Event::Empty(e) => self.open(&e, false, reader)?,
                Event::End(e) => match e.name().as_ref() {
                    b"Directory" => self.close_dir(),
                    b"FileListing" => return Ok(self.finish()),
                    // quick-xml checks that end tags match; nothing else
                    // can be open here.
                    _ => {}
                },
                Event::Eof if started => return Err(FileListError::Truncated),
                Event::Eof => return Err(FileListError::NotAFileList(String::new())),
                _ => {}
            }
            buf.clear();
        }
    }

    fn root_attributes(
        &mut self,
        e: &BytesStart<'_>,
        reader: &XmlReader<'_>,
    ) -> Result<(), FileListError> {
        self.listing.base = "/".to_string();
        for attr in e.attributes() {
            let attr = attr.map_err(|err| xml_error(reader, err.into()))?;
            let value = attr_value(&attr.value, reader)?.into_owned();
            match attr.key.as_ref() {
                b"Version" => self.listing.version = Some(value),
                b"CID" => self.listing.cid = Some(value),
                b"Base" => self.listing.base = value,
                b"Generator" => self.listing.generator = Some(value),
                _ => {}
            }
        }
        Ok(())
    }

    fn open(
        &mut self,
        e: &BytesStart<'_>,
        has_content: bool,
        reader: &XmlReader<'_>,
    ) -> Result<(), FileListError> {
        let is_dir = match e.name().as_ref() {
            b"Directory" => true,
            b"File" => false,
            _ => {
                if has_content {
                    self.skip = 1;
                }
                return Ok(());
            }
        };
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(FileListError::TooManyEntries { limit: self.limits.max_entries });
        }
        let mut name = None;
        let mut size = None;
        let mut tth = None;
        let mut incomplete = false;
        for attr in e.attributes() {
            let attr = attr.map_err(|err| xml_error(reader, err.into()))?;
            match attr.key.as_ref() {
                b"Name" => name = Some(attr_value(&attr.value, reader)?.into_owned()),
                b"Size" => size = attr_value(&attr.value, reader)?.trim().parse::<u64>().ok(),
                b"TTH" => tth = attr_value(&attr.value, reader)?.trim().parse::<Tth>().ok(),
                b"Incomplete" => incomplete = attr_value(&attr.value, reader)?.trim() == "1",
                _ => {}
            }
        }
        if let Some(n) = &name {
            if n == "." || n == ".." || n.contains('/') {
                return Err(FileListError::ForbiddenName(n.clone()));
            }
        }
        let name = match name {
            Some(n) if !n.is_empty() => n,
            _ => {
                self.listing.skipped += 1;
                if has_content {
                    self.skip = 1;
                }
                return Ok(());
            }
        };
        if is_dir {
            let dir = ListDir { name, incomplete, ..ListDir::default() };
            if has_content {
                // stack[0] is the listing itself, not a <Directory>.
                if self.stack.len() > self.limits.max_depth {
                    return Err(FileListError::TooDeep { limit: self.limits.max_depth });
                }
                self.stack.push(dir);
            } else if let Some(top) = self.stack.last_mut() {
                top.dirs.push(dir);
            }
        } else {
            if has_content {
                self.skip = 1;
            }
            match (size, self.stack.last_mut()) {
                (Some(size), Some(top)) => {
                    top.files.push(ListFile { name: name.into_boxed_str(), size, tth });
                }
                _ => self.listing.skipped += 1,
            }
        }
        Ok(())
    }

    fn close_dir(&mut self) {
        if self.stack.len() < 2 {
            return;
        }
        if let Some(mut dir) = self.stack.pop() {
            self.listing.duplicates += dir.dedupe();
            // A folder is complete: its vectors lose their growth slack
            // (up to half of what a large list holds).
            dir.dirs.shrink_to_fit();
            dir.files.shrink_to_fit();
            if let Some(parent) = self.stack.last_mut() {
                parent.dirs.push(dir);
            }
        }
    }

    fn finish(mut self) -> Listing {
        while self.stack.len() > 1 {
            self.close_dir();
        }
        if let Some(mut root) = self.stack.pop() {
            self.listing.duplicates += root.dedupe();
            root.dirs.shrink_to_fit();
            root.files.shrink_to_fit();
            self.listing.root = root;
        }
        self.listing
    }
}

fn attr_value<'v>(raw: &'v [u8], reader: &XmlReader<'_>) -> Result<Cow<'v, str>, FileListError> {
    let text = String::from_utf8_lossy(raw);
    match text {
        Cow::Borrowed(s) => quick_xml::escape::unescape(s).map_err(|e| xml_error(reader, e.into())),
        Cow::Owned(s) => match quick_xml::escape::unescape(&s) {
            Ok(v) => Ok(Cow::Owned(v.into_owned())),
            Err(e) => Err(xml_error(reader, e.into())),
        },
    }
}

fn xml_error(reader: &XmlReader<'_>, e: quick_xml::Error) -> FileListError {
    let capped = reader.get_ref().get_ref();
    if capped.exceeded {
        return FileListError::TooLarge { limit: capped.limit };
    }
    match e {
        quick_xml::Error::Io(io) => FileListError::Io(io::Error::new(io.kind(), io.to_string())),
        other => {
            FileListError::Xml { position: reader.buffer_position(), message: other.to_string() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::tree::ShareEntry;

    fn tree(paths: &[(&str, u64)]) -> ShareTree {
        let entries = paths.iter().enumerate().map(|(i, &(p, size))| ShareEntry {
            path: p.to_string(),
            size,
            tth: Some(Tth([i as u8; 24])),
            mtime: 0,
        });
        ShareTree::from_entries(entries).0
    }

    #[test]
    fn a_browsed_list_answers_searches_like_the_index() {
        let xml = br#"<?xml version="1.0" encoding="utf-8" standalone="yes"?>
<FileListing Version="1" CID="X" Base="/" Generator="test">
<Directory Name="Music">
  <Directory Name="Jazz Live"><File Name="Take Five.flac" Size="30000000" TTH="LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ"/></Directory>
  <File Name="notes.txt" Size="120"/>
</Directory>
<Directory Name="Video"><File Name="jazz.mkv" Size="900000000"/></Directory>
</FileListing>"#;
        let list = read_listing(&xml[..], &ReadLimits::default()).unwrap();
        let paths = |q: &crate::search::Query, limit| -> Vec<String> {
            list.search(q, limit).into_iter().map(|h| h.path).collect()
        };
        use crate::search::{FileType, Query};
        assert_eq!(
            paths(&Query::words("jazz"), 10),
            ["/Music/Jazz Live", "/Music/Jazz Live/Take Five.flac", "/Video/jazz.mkv"]
        );
        assert_eq!(paths(&Query::words("jazz"), 2).len(), 2);
        assert_eq!(paths(&Query::words("music five"), 10), ["/Music/Jazz Live/Take Five.flac"]);
        let audio = Query { file_type: FileType::Audio, ..Query::words("jazz") };
        assert_eq!(paths(&audio, 10), ["/Music/Jazz Live/Take Five.flac"]);
        let big = Query { min_size: Some(100_000_000), ..Query::default() };
        assert_eq!(paths(&big, 10), ["/Video/jazz.mkv"]);
        let not_live = Query { exclude: vec!["live".into()], ..Query::words("jazz") };
        assert_eq!(paths(&not_live, 10), ["/Video/jazz.mkv"]);
        let tth: Tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ".parse().unwrap();
        let hits = list.search(&Query::for_tth(tth), 10);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].file.map(|f| f.size), Some(30_000_000));
        assert!(paths(&Query::words("jazz"), 0).is_empty());
    }

    #[test]
    fn escapes_attribute_specials() {
        let mut out = Vec::new();
        escape_attr("a&b<c>d\"e'f\tg", &mut out);
        assert_eq!(out, b"a&amp;b&lt;c&gt;d&quot;e&apos;f&#9;g");
    }

    #[test]
    fn small_full_list_is_exact() {
        let t = tree(&[("R/b.txt", 2), ("R/sub/a.txt", 1)]);
        let xml = write_xml(&t, &ListOptions { threads: 1, ..ListOptions::full("CID") }).unwrap();
        let tth0 = Tth([0; 24]).to_string();
        let tth1 = Tth([1; 24]).to_string();
        let expected = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>\n\
             <FileListing Version=\"1\" CID=\"CID\" Base=\"/\" Generator=\"{GENERATOR}\">\n\
             <Directory Name=\"R\">\n\
             <Directory Name=\"sub\">\n\
             <File Name=\"a.txt\" Size=\"1\" TTH=\"{tth1}\"/>\n\
             </Directory>\n\
             <File Name=\"b.txt\" Size=\"2\" TTH=\"{tth0}\"/>\n\
             </Directory>\n\
             </FileListing>\n"
        );
        assert_eq!(String::from_utf8(xml).unwrap(), expected);
    }

    #[test]
    fn chunks_split_large_folders() {
        let paths: Vec<(String, u64)> =
            (0..CHUNK_ENTRIES * 2 + 10).map(|i| (format!("R/d/f{i:06}"), i as u64)).collect();
        let refs: Vec<(&str, u64)> = paths.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        let t = tree(&refs);
        let chunks = plan(&t, t.top(), true);
        assert!(chunks.len() >= 3, "{}", chunks.len());
        assert!(chunks[0].first && !chunks[1].first && !chunks[1].last);
        assert!(chunks.last().is_some_and(|c| c.last));
        let one = write_xml(&t, &ListOptions { threads: 1, ..ListOptions::full("C") }).unwrap();
        let two = write_xml(&t, &ListOptions { threads: 2, ..ListOptions::full("C") }).unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn capped_reader_stops_at_the_limit() {
        let mut ok =
            Capped { inner: Cursor::new(vec![0u8; 10]), limit: 10, left: 10, exceeded: false };
        assert_eq!(io::copy(&mut ok, &mut io::sink()).unwrap(), 10);
        let mut over =
            Capped { inner: Cursor::new(vec![0u8; 11]), limit: 10, left: 10, exceeded: false };
        assert!(io::copy(&mut over, &mut io::sink()).is_err());
        assert!(over.exceeded);
    }

    #[test]
    fn reader_rejects_non_lists_and_truncation() {
        let limits = ReadLimits::default();
        assert!(matches!(
            read_listing(&b"<html></html>"[..], &limits),
            Err(FileListError::NotAFileList(_))
        ));
        assert!(matches!(
            read_listing(&b"<FileListing Base=\"/\"><Directory Name=\"a\">"[..], &limits),
            Err(FileListError::Truncated)
        ));
        assert!(matches!(
            read_listing(&b"<FileListing><Directory Name=\"a/b\"/></FileListing>"[..], &limits),
            Err(FileListError::ForbiddenName(_))
        ));
    }
}
