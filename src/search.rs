//! One search model below hubs and the share: the query, the file types with
//! their extension groups, and the matcher.
//!
//! Owns what a search *means*, whatever carried it: the share index answers a
//! [`Query`] with the [`Matcher`], and the same matcher filters the results
//! that come back for our own searches (NMDC results carry no token). The
//! wire forms live elsewhere: NMDC type codes and ADC `TY`/`EX`/`GR` in the
//! hub protocol adapters. The number of results wanted is an argument of
//! whoever runs the search ([`MAX_RESULTS_ACTIVE`], [`MAX_RESULTS_PASSIVE`]),
//! not part of the query. Pure: no I/O, no clocks.
//!
//! # What matches (DC++ and ADC semantics)
//!
//! - **TTH** (`tth` set, NMDC type 9, ADC `TR`): the files with that root.
//!   Every other criterion is ignored, as DC++ does.
//! - **Words**: every `include` term must occur, case-insensitively, in the
//!   entry's path: in its own name or in the name of a folder above it (ADC:
//!   "each filename, including the path to it"). A term is matched inside one
//!   path component: a term holding `/` or `\` is split there into several
//!   terms. No `exclude` term (ADC `NO`) may occur anywhere in the path.
//! - **Type**: [`FileType`] groups are extension lists (the NMDC search
//!   types); `Folder` (NMDC 8, ADC `TY2`) matches folders only, `File` (ADC
//!   `TY1`) files only. `extensions` (ADC `EX`) requires one of them.
//! - **Size** (`min_size`, `max_size`, `size`; inclusive) applies to files.
//!   Folders have no size to search by, so a query with any size bound, a
//!   type group or extensions matches files only.

use crate::proto::tth::Tth;

/// Results to send a passive searcher (through the hub).
pub const MAX_RESULTS_PASSIVE: usize = 5;
/// Results to send an active searcher (by UDP).
pub const MAX_RESULTS_ACTIVE: usize = 10;
/// At most this many include terms are used (one bit each); more are ignored.
pub const MAX_TERMS: usize = 64;

/// A search type: an extension group (the NMDC search types), or files or
/// folders only. A TTH search is not a type: it is [`Query::tth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum FileType {
    /// Anything (NMDC 1, and 9 with a TTH).
    #[default]
    Any,
    /// Audio files (NMDC 2).
    Audio,
    /// Archives (NMDC 3).
    Compressed,
    /// Documents (NMDC 4).
    Document,
    /// Executables and installers (NMDC 5).
    Executable,
    /// Pictures (NMDC 6).
    Picture,
    /// Video (NMDC 7).
    Video,
    /// Folders only (NMDC 8, ADC `TY2`).
    Folder,
    /// Files only, any extension (ADC `TY1`).
    File,
}

const AUDIO: &[&str] = &[
    "mp3", "mp2", "mpa", "wav", "wma", "flac", "ogg", "oga", "opus", "m4a", "aac", "ape", "aif",
    "aiff", "au", "mid", "midi", "ra", "ram", "wv", "mka", "ac3", "dts", "m3u", "pls", "mpc",
];
const COMPRESSED: &[&str] = &[
    "zip", "rar", "7z", "tar", "gz", "tgz", "bz2", "tbz", "tbz2", "xz", "txz", "zst", "lz", "lzma",
    "z", "ace", "arj", "lha", "lzh", "cab", "sit", "sitx", "hqx", "sea", "r00", "r01",
];
const DOCUMENT: &[&str] = &[
    "txt", "nfo", "doc", "docx", "odt", "rtf", "pdf", "ps", "tex", "htm", "html", "xhtml", "xml",
    "md", "epub", "mobi", "djvu", "xls", "xlsx", "ods", "ppt", "pptx", "odp", "csv", "chm", "wri",
    "fb2", "azw3",
];
const EXECUTABLE: &[&str] = &[
    "exe", "com", "bat", "cmd", "msi", "scr", "pif", "jar", "apk", "deb", "rpm", "appimage", "dmg",
    "sh", "run", "bin",
];
const PICTURE: &[&str] = &[
    "jpg", "jpeg", "jpe", "png", "gif", "bmp", "tif", "tiff", "ico", "webp", "svg", "psd", "raw",
    "cr2", "nef", "dng", "heic", "heif", "pcx", "tga", "xcf", "jxl", "avif",
];
const VIDEO: &[&str] = &[
    "avi", "mkv", "mp4", "m4v", "mov", "wmv", "mpg", "mpeg", "mpe", "vob", "ogm", "ogv", "webm",
    "flv", "asf", "divx", "rm", "rmvb", "ts", "m2ts", "mts", "3gp",
];

impl FileType {
    /// Every type, in NMDC code order, with the name scripts use.
    pub const ALL: [(&'static str, FileType); 9] = [
        ("any", FileType::Any),
        ("audio", FileType::Audio),
        ("compressed", FileType::Compressed),
        ("document", FileType::Document),
        ("executable", FileType::Executable),
        ("picture", FileType::Picture),
        ("video", FileType::Video),
        ("folder", FileType::Folder),
        ("file", FileType::File),
    ];

    /// The name scripts use (`"audio"`).
    pub fn name(self) -> &'static str {
        FileType::ALL.iter().find(|(_, t)| *t == self).map_or("any", |(n, _)| n)
    }

    /// The type a script names (case-insensitive).
    pub fn from_name(name: &str) -> Option<FileType> {
        FileType::ALL.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, t)| *t)
    }

    /// The extensions of a group (lower case, no dot); empty for `Any`,
    /// `File` and `Folder`.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            FileType::Audio => AUDIO,
            FileType::Compressed => COMPRESSED,
            FileType::Document => DOCUMENT,
            FileType::Executable => EXECUTABLE,
            FileType::Picture => PICTURE,
            FileType::Video => VIDEO,
            FileType::Any | FileType::Folder | FileType::File => &[],
        }
    }
}

/// A protocol-neutral search. NMDC can carry only part of it (words, one size
/// bound, a type, a TTH); the rest is applied to the results as they come.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// Search by TTH; when set, everything else is ignored.
    pub tth: Option<Tth>,
    /// Terms that must all occur in the path (NMDC words, ADC `AN`).
    pub include: Vec<String>,
    /// Terms that must not occur in the path (ADC `NO`).
    pub exclude: Vec<String>,
    /// Smallest size, inclusive (NMDC "at least", ADC `GE`).
    pub min_size: Option<u64>,
    /// Largest size, inclusive (NMDC "at most", ADC `LE`).
    pub max_size: Option<u64>,
    /// Exact size (ADC `EQ`).
    pub size: Option<u64>,
    /// The type (NMDC type, ADC `TY` / `GR`).
    pub file_type: FileType,
    /// Accepted extensions without the dot (ADC `EX`); empty means any.
    pub extensions: Vec<String>,
}

impl Query {
    /// A search for whitespace-separated words.
    pub fn words(text: &str) -> Query {
        Query { include: text.split_whitespace().map(str::to_string).collect(), ..Query::default() }
    }

    /// A search by TTH.
    pub fn for_tth(tth: Tth) -> Query {
        Query { tth: Some(tth), ..Query::default() }
    }

    /// The words, joined by spaces.
    pub fn text(&self) -> String {
        self.include.join(" ")
    }

    /// Whether an entry answers this search: a file or folder at `path`
    /// (`/`-separated, with or without a leading or trailing `/`), of `size`
    /// bytes for a file (`None` for a folder), with root `tth`.
    pub fn matches(&self, path: &str, size: Option<u64>, tth: Option<&Tth>) -> bool {
        if let Some(want) = &self.tth {
            return tth == Some(want);
        }
        Matcher::new(self).is_some_and(|m| m.matches_path(path, size))
    }
}

/// A query normalised for matching: folded terms, one size range, and which
/// kinds of entry can match. The share index runs it over its tree (using
/// [`Matcher::name_terms`] and [`Matcher::file_ok`] component by component);
/// [`Matcher::matches_path`] runs it over one whole path. TTH searches don't
/// need it.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Folded include terms, split at separators, de-duplicated, at most
    /// [`MAX_TERMS`].
    pub(crate) include: Vec<String>,
    /// Folded exclude terms.
    pub(crate) exclude: Vec<String>,
    /// Folded extensions without the dot.
    pub(crate) extensions: Vec<String>,
    /// The type group's extensions.
    pub(crate) group: &'static [&'static str],
    /// The size range, inclusive.
    pub(crate) min: u64,
    pub(crate) max: u64,
    /// Whether files, and folders, can match.
    pub(crate) files: bool,
    pub(crate) dirs: bool,
    /// The mask of a path that holds every include term.
    pub(crate) full: u64,
}

impl Matcher {
    /// `None` when nothing can match.
    pub fn new(q: &Query) -> Option<Matcher> {
        let mut include = split_terms(&q.include);
        include.truncate(MAX_TERMS);
        let exclude = split_terms(&q.exclude);
        let extensions: Vec<String> = q
            .extensions
            .iter()
            .map(|e| fold(e.trim_start_matches('.')))
            .filter(|e| !e.is_empty())
            .collect();
        let mut min = q.min_size.unwrap_or(0);
        let mut max = q.max_size.unwrap_or(u64::MAX);
        if let Some(s) = q.size {
            min = min.max(s);
            max = max.min(s);
        }
        let sized = q.min_size.is_some() || q.max_size.is_some() || q.size.is_some();
        let group = q.file_type.extensions();
        let files = q.file_type != FileType::Folder;
        let dirs = matches!(q.file_type, FileType::Any | FileType::Folder)
            && extensions.is_empty()
            && !sized;
        if min > max || (!files && !dirs) {
            return None;
        }
        // A path holding an include term holds every piece of it: an exclude
        // term inside an include term rules out everything.
        if include.iter().any(|t| exclude.iter().any(|x| t.contains(x.as_str()))) {
            return None;
        }
        let full = if include.len() == 64 { u64::MAX } else { (1u64 << include.len()) - 1 };
        Some(Matcher { include, exclude, extensions, group, min, max, files, dirs, full })
    }

    /// The include terms found in one folded name, added to `mask`, and
    /// whether the name holds an exclude term.
    #[inline]
    pub fn name_terms(&self, folded: &str, mut mask: u64) -> (u64, bool) {
        if mask == self.full && self.exclude.is_empty() {
            return (mask, false);
        }
        for (i, t) in self.include.iter().enumerate() {
            if mask & (1 << i) == 0 && folded.contains(t.as_str()) {
                mask |= 1 << i;
            }
        }
        (mask, self.exclude.iter().any(|t| folded.contains(t.as_str())))
    }

    /// Whether a file of this (unfolded) name and size passes the size, type
    /// and extension checks. Terms are not looked at.
    #[inline]
    pub fn file_ok(&self, name: &str, size: u64) -> bool {
        if !self.files || size < self.min || size > self.max {
            return false;
        }
        if self.group.is_empty() && self.extensions.is_empty() {
            return true;
        }
        let Some((_, ext)) = name.rsplit_once('.') else { return false };
        if !self.group.is_empty() && !self.group.iter().any(|g| g.eq_ignore_ascii_case(ext)) {
            return false;
        }
        self.extensions.is_empty() || self.extensions.contains(&fold(ext))
    }

    /// Whether the entry at `path` matches: a file of `size` bytes, or a
    /// folder (`None`).
    pub fn matches_path(&self, path: &str, size: Option<u64>) -> bool {
        let trimmed = path.trim_matches('/');
        let name = trimmed.rsplit('/').next().unwrap_or(trimmed);
        match size {
            Some(size) if !self.file_ok(name, size) => return false,
            None if !self.dirs => return false,
            _ => {}
        }
        let mut mask = 0;
        let mut buf = String::new();
        for part in trimmed.split('/').filter(|p| !p.is_empty()) {
            fold_into(part, &mut buf);
            let (m, excluded) = self.name_terms(&buf, mask);
            if excluded {
                return false;
            }
            mask = m;
        }
        mask == self.full
    }
}

/// Folded, separator-split, de-duplicated terms.
fn split_terms(terms: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in terms {
        for part in t.split(['/', '\\']) {
            if part.is_empty() {
                continue;
            }
            let f = fold(part);
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

/// Case-folds `s` into `out` (cleared first): ASCII lower-cased in place,
/// other characters by Unicode lower-casing. Names, terms and extensions are
/// compared folded.
pub fn fold_into(s: &str, out: &mut String) {
    out.clear();
    if s.is_ascii() {
        out.push_str(s);
        out.make_ascii_lowercase();
    } else {
        for c in s.chars() {
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
        }
    }
}

/// Case-folded `s` as a new string.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    fold_into(s, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(f: impl FnOnce(&mut Query)) -> Query {
        let mut q = Query::default();
        f(&mut q);
        q
    }

    /// A query, an entry (path, size, TTH) and whether it matches.
    type Case<'a> = (Query, &'a str, Option<u64>, Option<&'a Tth>, bool);

    #[test]
    fn matching_table() {
        let tth: Tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ".parse().unwrap();
        let other: Tth = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
        #[rustfmt::skip]
        let cases: Vec<Case<'_>> = vec![
            (Query::words("beatles help"), "/Music/Beatles/Help.mp3", Some(5), None, true),
            (Query::words("beatles help"), "Music/Beatles/Help.mp3", Some(5), None, true),
            (Query::words("beatles stones"), "/Music/Beatles/Help.mp3", Some(5), None, false),
            (Query::words("BEATLES"), "/music/beatles/", None, None, true),
            (Query::words("a/b"), "/x/a/y/b.txt", Some(1), None, true),
            (Query::words("Grüße"), "/Texte/GRÜSSE.txt", Some(1), None, false),
            (Query::words("grüße"), "/Texte/Grüße.txt", Some(1), None, true),
            (q(|q| { q.include = vec!["help".into()]; q.exclude = vec!["beatles".into()]; }),
                "/Music/Beatles/Help.mp3", Some(5), None, false),
            (q(|q| q.file_type = FileType::Audio), "/a/b.MP3", Some(1), None, true),
            (q(|q| q.file_type = FileType::Audio), "/a/b.avi", Some(1), None, false),
            (q(|q| q.file_type = FileType::Audio), "/a/", None, None, false),
            (q(|q| q.file_type = FileType::Folder), "/a/", None, None, true),
            (q(|q| q.file_type = FileType::Folder), "/a/b.mp3", Some(1), None, false),
            (q(|q| q.file_type = FileType::File), "/a/b", Some(1), None, true),
            (q(|q| q.file_type = FileType::File), "/a/", None, None, false),
            (q(|q| q.extensions = vec![".MKV".into()]), "/v/x.mkv", Some(1), None, true),
            (q(|q| q.extensions = vec!["mkv".into()]), "/v/mkv", Some(1), None, false),
            (q(|q| q.min_size = Some(10)), "/a", Some(10), None, true),
            (q(|q| q.min_size = Some(10)), "/a", Some(9), None, false),
            (q(|q| q.max_size = Some(10)), "/a", Some(11), None, false),
            (q(|q| q.max_size = Some(10)), "/dir/", None, None, false),
            (q(|q| q.size = Some(7)), "/a", Some(7), None, true),
            (q(|q| { q.min_size = Some(8); q.max_size = Some(7); }), "/a", Some(7), None, false),
            (Query::for_tth(tth), "/anything", Some(1), Some(&tth), true),
            (Query::for_tth(tth), "/anything", Some(1), Some(&other), false),
            (Query::for_tth(tth), "/anything", Some(1), None, false),
        ];
        for (i, (query, path, size, t, want)) in cases.iter().enumerate() {
            assert_eq!(query.matches(path, *size, *t), *want, "case {i}: {query:?} on {path}");
        }
    }

    #[test]
    fn file_type_names_round_trip() {
        for (name, t) in FileType::ALL {
            assert_eq!(t.name(), name);
            assert_eq!(FileType::from_name(&name.to_uppercase()), Some(t));
        }
        assert_eq!(FileType::from_name("tth"), None);
        assert!(FileType::Video.extensions().contains(&"mkv"));
        assert!(FileType::Folder.extensions().is_empty());
    }

    #[test]
    fn terms_are_folded_split_and_deduplicated() {
        let m = Matcher::new(&Query::words("Foo foo a\\B")).unwrap();
        assert_eq!(m.include, vec!["foo", "a", "b"]);
        assert_eq!(m.full, 0b111);
        assert!(Matcher::new(&q(|q| {
            q.include = vec!["hello".into()];
            q.exclude = vec!["ell".into()];
        }))
        .is_none());
    }
}
