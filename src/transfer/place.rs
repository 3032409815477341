//! Where a download lands: names from peers made safe, the temporary file
//! beside its target, and the final move that never overwrites.
//!
//! Every name that reaches the file system from outside (a peer's file
//! list, a search result, a magnet's `dn`, a script's `dir`) goes through
//! [`safe_relative`] before it is joined to the download folder, so that
//! whoever asks, nothing is written outside that folder: `..` and `.` are
//! dropped, absolute paths become relative, separators inside a name, NUL
//! and control characters become `_`, Windows' reserved device names get a
//! `_` prefix (the files are shared on, often to Windows users), and each
//! component is cut to 255 bytes keeping its extension.
//!
//! The download is written to a temporary file in the target's own folder
//! ([`temp_path`]), so that the final move is a rename on one file system.
//! [`move_into_place`] moves it with `renameat2(RENAME_NOREPLACE)` where
//! the kernel and the file system have it, else with `link` + `unlink`,
//! both atomic and both refusing to replace an existing file; on a clash
//! the file gets the first free name of the form `name (1).ext`.
//!
//! Symbolic links the user made inside the download folder are followed:
//! the folder is the user's own, and so is what they link from it.
//!
//! This module does no transfer and keeps no state.

use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The longest file-name component most Unix file systems take, in bytes.
pub const MAX_COMPONENT: usize = 255;

/// How many numbered alternatives [`move_into_place`] tries on a clash.
const MAX_ALTERNATIVES: u32 = 9_999;

/// The suffix of a download in progress.
pub const TEMP_SUFFIX: &str = ".dctmp";

/// A name that cannot become a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    /// Nothing was left of the name once made safe (`""`, `..`, `/`).
    #[error("the name {0:?} names no file once made safe (empty, `.` or `..` only)")]
    Empty(String),
}

/// One path component from outside made safe to create in a folder we own;
/// `None` when nothing usable is left (empty, `.` or `..`).
pub fn safe_component(name: &str) -> Option<String> {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    // Trailing dots and spaces vanish on Windows (`a.` is `a`): a name that
    // differs only by them is the same file there.
    let trimmed = out.trim_end_matches(['.', ' ']).len();
    if trimmed == 0 {
        return None;
    }
    out.truncate(trimmed);
    if is_reserved(&out) {
        out.insert(0, '_');
    }
    Some(truncate_keeping_extension(out, MAX_COMPONENT))
}

/// Windows device names (`CON`, `nul.txt`, `com1`, ...): a file so named
/// cannot be opened on Windows whatever its extension.
fn is_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => {
            let b = upper.as_bytes();
            b.len() == 4
                && (upper.starts_with("COM") || upper.starts_with("LPT"))
                && (b'1'..=b'9').contains(&b[3])
        }
    }
}

/// Cuts `name` to at most `max` bytes on a character boundary, keeping its
/// extension (up to 16 bytes of it) so that the file still opens with the
/// right program.
fn truncate_keeping_extension(name: String, max: usize) -> String {
    if name.len() <= max {
        return name;
    }
    let ext = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => &name[i..],
        _ => "",
    };
    let mut keep = max - ext.len();
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{ext}", &name[..keep])
}

/// A relative path from outside (`dir/sub/file`, `\share\x`, `/abs/path`),
/// each component made safe; `.`, `..` and empty components are dropped, so
/// the result joined to any folder stays inside it.
pub fn safe_relative(path: &str) -> Result<PathBuf, PlaceError> {
    let out: PathBuf = path.split(['/', '\\']).filter_map(safe_component).collect();
    if out.as_os_str().is_empty() {
        return Err(PlaceError::Empty(path.to_string()));
    }
    Ok(out)
}

/// `root` joined with the safe form of `path` (see [`safe_relative`]).
pub fn under(root: &Path, path: &str) -> Result<PathBuf, PlaceError> {
    let rel = safe_relative(path)?;
    debug_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
    Ok(root.join(rel))
}

/// The temporary file of a download of `target`: a hidden file in the same
/// folder named after the target and a tag (the TTH, say), so that two
/// downloads of one name never share a temporary file and a restart finds it.
pub fn temp_path(target: &Path, tag: &str) -> PathBuf {
    let name = target.file_name().map_or_else(|| "download".into(), OsStr::to_string_lossy);
    // The tag is ours (base32), but cut anyway: the name must stay legal.
    let tag: String = tag.chars().filter(char::is_ascii_alphanumeric).take(39).collect();
    let room = MAX_COMPONENT - 1 - tag.len() - 1 - TEMP_SUFFIX.len();
    let short = truncate_keeping_extension(name.into_owned(), room);
    target.with_file_name(format!(".{short}.{tag}{TEMP_SUFFIX}"))
}

/// Moves the finished `tmp` to `target` without ever replacing an existing
/// file: when `target` exists, the first free `name (N).ext` is used.
/// Returns where the file went.
pub fn move_into_place(tmp: &Path, target: &Path) -> io::Result<PathBuf> {
    let mut candidate = target.to_path_buf();
    for n in 1..=MAX_ALTERNATIVES {
        match rename_noreplace(tmp, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                candidate = numbered(target, n);
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("moving {} to {}: {e}", tmp.display(), candidate.display()),
                ))
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "moving {} into place: {} and {MAX_ALTERNATIVES} numbered names all exist",
            tmp.display(),
            target.display()
        ),
    ))
}

/// `dir/name (n).ext` for `dir/name.ext`.
fn numbered(target: &Path, n: u32) -> PathBuf {
    let name = target.file_name().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name.as_str(), ""),
    };
    let suffix = format!(" ({n}){ext}");
    let stem = truncate_keeping_extension(stem.to_string(), MAX_COMPONENT - suffix.len());
    target.with_file_name(format!("{stem}{suffix}"))
}

/// An atomic rename that fails with `AlreadyExists` instead of replacing.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let cstr = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path holds a NUL byte"))
        };
        let (f, t) = (cstr(from)?, cstr(to)?);
        // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves
        // them like rename(2) does.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        // EINVAL: the file system has no RENAME_NOREPLACE; ENOSYS: the
        // kernel has no renameat2. Anything else is the answer.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(e);
        }
    }
    // link(2) never replaces either; then the temporary name goes.
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_from_outside_are_made_safe() {
        let cases: &[(&str, Option<&str>)] = &[
            ("song.mp3", Some("song.mp3")),
            ("", None),
            (".", None),
            ("..", None),
            ("...", None),
            (" . ", None),
            ("a/b", Some("a_b")),
            ("a\\b", Some("a_b")),
            ("nul\0byte", Some("nul_byte")),
            ("tab\there\n", Some("tab_here_")),
            ("trailing. . ", Some("trailing")),
            ("CON", Some("_CON")),
            ("con.txt", Some("_con.txt")),
            ("Com7.tar.gz", Some("_Com7.tar.gz")),
            ("COM0", Some("COM0")),
            ("LPT10", Some("LPT10")),
            ("console", Some("console")),
            (".hidden", Some(".hidden")),
            ("ünïcödé ✓", Some("ünïcödé ✓")),
        ];
        for (input, want) in cases {
            assert_eq!(safe_component(input).as_deref(), *want, "{input:?}");
        }
    }

    #[test]
    fn long_names_keep_their_extension_and_char_boundaries() {
        let long = format!("{}.flac", "é".repeat(200));
        let safe = safe_component(&long).unwrap();
        assert!(safe.len() <= MAX_COMPONENT, "{}", safe.len());
        assert!(safe.ends_with(".flac"));
        let no_ext = "x".repeat(300);
        assert_eq!(safe_component(&no_ext).unwrap().len(), MAX_COMPONENT);
    }

    #[test]
    fn relative_paths_never_leave_the_root() {
        let root = Path::new("/downloads");
        let cases: &[(&str, &str)] = &[
            ("a/b/c.txt", "/downloads/a/b/c.txt"),
            ("/etc/passwd", "/downloads/etc/passwd"),
            ("../../etc/passwd", "/downloads/etc/passwd"),
            ("a/../../b", "/downloads/a/b"),
            ("\\share\\dir\\x", "/downloads/share/dir/x"),
            ("./a//b/./c", "/downloads/a/b/c"),
            ("..\\..\\x", "/downloads/x"),
            ("dir/CON/aux.txt", "/downloads/dir/_CON/_aux.txt"),
        ];
        for (input, want) in cases {
            let got = under(root, input).unwrap();
            assert_eq!(got, Path::new(want), "{input:?}");
            assert!(got.starts_with(root));
        }
        for bad in ["", "/", "..", "../..", "./.", "\\"] {
            assert_eq!(safe_relative(bad), Err(PlaceError::Empty(bad.to_string())), "{bad:?}");
        }
    }

    #[test]
    fn temporary_files_sit_beside_their_target() {
        let t =
            temp_path(Path::new("/d/music/song.mp3"), "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ");
        assert_eq!(
            t,
            Path::new("/d/music/.song.mp3.LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ.dctmp")
        );
        let long = temp_path(&Path::new("/d").join("n".repeat(255)), "TAG");
        assert!(long.file_name().unwrap().len() <= MAX_COMPONENT);
        assert_eq!(long.parent(), Some(Path::new("/d")));
    }

    #[test]
    fn the_final_move_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("file.txt");
        std::fs::write(&target, "the user's own file").unwrap();
        let mut placed = Vec::new();
        for i in 0..3 {
            let tmp = temp_path(&target, &format!("T{i}"));
            std::fs::write(&tmp, format!("download {i}")).unwrap();
            placed.push(move_into_place(&tmp, &target).unwrap());
            assert!(!tmp.exists());
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "the user's own file");
        let names: Vec<_> =
            placed.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["file (1).txt", "file (2).txt", "file (3).txt"]);
        assert_eq!(std::fs::read_to_string(&placed[2]).unwrap(), "download 2");
        let fresh = dir.path().join("new");
        let tmp = temp_path(&fresh, "T");
        std::fs::write(&tmp, "x").unwrap();
        assert_eq!(move_into_place(&tmp, &fresh).unwrap(), fresh);
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered(Path::new("/d/a.tar.gz"), 2), Path::new("/d/a.tar (2).gz"));
        assert_eq!(numbered(Path::new("/d/README"), 1), Path::new("/d/README (1)"));
        assert_eq!(numbered(Path::new("/d/.bashrc"), 1), Path::new("/d/.bashrc (1)"));
    }

    #[test]
    fn a_missing_temporary_file_is_an_error_not_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let e = move_into_place(&dir.path().join("gone"), &dir.path().join("x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("gone"), "{e}");
    }
}
