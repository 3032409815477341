//! Logging: the `log` facade's backend.
//!
//! Lines go to standard error by default. The console swaps the sink so that
//! log lines print above its prompt without breaking the line being typed.
//! The level can change at run time (configuration reload).
//!
//! With `log_file` set, every line is also appended to that file, one write
//! per line (nothing is lost in a crash but the line being written). When
//! the file passes [`ROTATE_BYTES`] it becomes `FILE.1` (the older ones
//! `FILE.2` ... up to [`KEEP_ROTATED`]) and a new file starts. A file that
//! cannot be written is said once on standard error and then left alone.
//!
//! Every record is one line, neutralised by [`crate::text::neutralise`]:
//! messages often carry text a hub or a peer chose (chat, nicks, reasons), and
//! a control character in them must neither drive the terminal nor start a
//! forged log line. A message's own newlines (a Lua traceback) are shown as
//! `\n` too. This module must not hold protocol state or filter records by
//! content.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::text::neutralise;

/// Where formatted log lines go.
pub type Sink = Box<dyn Fn(&str) + Send + Sync>;

/// A log file past this size is rotated.
pub const ROTATE_BYTES: u64 = 10 << 20;
/// Rotated files kept (`FILE.1` ... `FILE.3`).
pub const KEEP_ROTATED: u32 = 3;

struct Logger {
    sink: Mutex<Option<Sink>>,
    file: Mutex<Option<LogFile>>,
}

/// The `log_file`, open for appending.
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    rotate_at: u64,
}

impl LogFile {
    /// Opens (creating) `path` for appending, rotated past `rotate_at` bytes.
    pub fn open(path: &Path, rotate_at: u64) -> std::io::Result<LogFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile { path: path.to_path_buf(), file, size, rotate_at: rotate_at.max(1) })
    }

    /// Appends one line, rotating first when the file is full.
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.rotate_at {
            self.rotate()?;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        for n in (1..KEEP_ROTATED).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let logger = LOGGER.get_or_init(|| Logger { sink: Mutex::new(None), file: Mutex::new(None) });
    // Fails only when a logger is already installed (tests install it from
    // several places): keep the one there.
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}

/// Changes the level at run time.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// The log file used when the configuration names none (`dclua daemon`:
/// `<data>/dclua.log`, since a daemon's standard error is often nowhere).
static DEFAULT_FILE: Mutex<Option<std::path::PathBuf>> = Mutex::new(None);

/// Sets the log file for when the configuration names none, and opens it
/// unless one is open already.
pub fn set_default_file(path: &Path) -> std::io::Result<()> {
    *DEFAULT_FILE.lock().unwrap_or_else(|p| p.into_inner()) = Some(path.to_path_buf());
    let open = LOGGER.get().is_some_and(|l| l.file.lock().is_ok_and(|f| f.is_some()));
    if open {
        Ok(())
    } else {
        set_file(None)
    }
}

/// Also appends every line to `path` (`None`: the default file of
/// [`set_default_file`], else no file). The file is opened here, so a bad
/// path is an error for the caller to report.
pub fn set_file(path: Option<&Path>) -> std::io::Result<()> {
    let default = DEFAULT_FILE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let file = match path.or(default.as_deref()) {
        Some(p) => Some(LogFile::open(p, ROTATE_BYTES)?),
        None => None,
    };
    if let Some(l) = LOGGER.get() {
        if let Ok(mut f) = l.file.lock() {
            *f = file;
        }
    }
    Ok(())
}

/// Sends log lines to `sink` instead of standard error (`None` restores it).
pub fn set_sink(sink: Option<Sink>) {
    if let Some(l) = LOGGER.get() {
        if let Ok(mut s) = l.sink.lock() {
            *s = sink;
        }
    }
}

/// Formats one record: `HH:MM:SS.mmm LEVEL target: message`, UTC.
fn format(record: &Record<'_>) -> String {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format_at(now, record.level(), record.target(), &record.args().to_string())
}

/// Formats one record at `now` (since the epoch) into one neutralised line.
pub fn format_at(now: Duration, level: Level, target: &str, message: &str) -> String {
    let secs = now.as_secs() % 86_400;
    let target = target.strip_prefix("dclua::").unwrap_or(target);
    format!(
        "{:02}:{:02}:{:02}.{:03} {:<5} {}: {}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        now.subsec_millis(),
        level,
        neutralise(target),
        neutralise(message)
    )
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format(record);
        if let Ok(mut guard) = self.file.lock() {
            if let Some(f) = guard.as_mut() {
                if let Err(e) = f.write_line(&line) {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "dclua: writing the log file {}: {e}; the log goes on without it",
                        f.path.display()
                    );
                    *guard = None;
                }
            }
        }
        match self.sink.lock() {
            Ok(sink) if sink.is_some() => {
                if let Some(f) = sink.as_ref() {
                    f(&line);
                }
            }
            _ => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_file_rotates_by_size_and_keeps_three() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("dclua.log");
        let mut f = LogFile::open(&path, 100).unwrap();
        for i in 0..20 {
            f.write_line(&format!("line {i:02} {}", "x".repeat(30))).unwrap();
        }
        // 40 bytes a line, two lines a file: the last two lines are in the
        // file, the six before in .1 .2 .3, older ones gone.
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert!(read(&path).starts_with("line 18"), "{}", read(&path));
        assert_eq!(read(&path).lines().count(), 2);
        let mut one = path.clone().into_os_string();
        one.push(".1");
        assert!(read(Path::new(&one)).starts_with("line 16"));
        let mut three = path.clone().into_os_string();
        three.push(".3");
        assert!(read(Path::new(&three)).starts_with("line 12"));
        let mut four = path.clone().into_os_string();
        four.push(".4");
        assert!(!Path::new(&four).exists());
        // Reopening appends.
        let mut again = LogFile::open(&path, 1000).unwrap();
        again.write_line("after").unwrap();
        assert!(read(&path).ends_with("after\n"));
    }
}
