//! [`ConfigError`] and [`Problem`]: why a configuration could not be loaded
//! or written, with the file and line of each problem.
//!
//! A leaf: running the script, checking it and the standard paths all report
//! these.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// The largest configuration file read, in bytes.
pub const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// One problem in a configuration, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as named to the loader.
    pub file: String,
    /// The line, when known.
    pub line: Option<usize>,
    /// What is wrong (with the setting path, as in `slots: expected ...`).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Why a configuration could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is larger than [`MAX_FILE_SIZE`].
    #[error("the configuration file {} is {size} bytes; the limit is {MAX_FILE_SIZE}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The script did not compile or stopped with an error (including the
    /// instruction and memory limits).
    #[error("{0}")]
    Script(Problem),
    /// The script ran but what it set is wrong; one or more problems, in line order.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Problem>),
    /// The Lua state could not be prepared (out of memory, most likely).
    #[error("{file}: cannot prepare Lua for the configuration: {message}")]
    Setup {
        /// The file being loaded.
        file: String,
        /// The cause.
        message: String,
    },
    /// [`init`](super::init) found a file already there.
    #[error("{} already exists; not overwriting it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// [`init`](super::init) could not write.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// No home folder to find the standard folders in.
    #[error("cannot find the {what} folder (is $HOME set?); use {flag}")]
    NoFolder {
        /// Which folder.
        what: &'static str,
        /// The flag that names it instead.
        flag: &'static str,
    },
}

impl ConfigError {
    /// The located problems, for callers that show them one by one; empty
    /// for I/O errors.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Script(problem) => std::slice::from_ref(problem),
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn join_lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}
