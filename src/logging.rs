//! Logging: the `log` facade's backend.
//!
//! Lines go to standard error by default. The console swaps the sink so that
//! log lines print above its prompt without breaking the line being typed.
//! The level can change at run time (configuration reload).
//!
//! Every record is one line, neutralised by [`crate::text::neutralise`]:
//! messages often carry text a hub or a peer chose (chat, nicks, reasons), and
//! a control character in them must neither drive the terminal nor start a
//! forged log line. A message's own newlines (a Lua traceback) are shown as
//! `\n` too. This module must not hold protocol state or filter records by
//! content.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::text::neutralise;

/// Where formatted log lines go.
pub type Sink = Box<dyn Fn(&str) + Send + Sync>;

struct Logger {
    sink: Mutex<Option<Sink>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let logger = LOGGER.get_or_init(|| Logger { sink: Mutex::new(None) });
    // Fails only when a logger is already installed (tests install it from
    // several places): keep the one there.
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}

/// Changes the level at run time.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
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
