//! What every SQLite file of dclua does the same way: the connection's
//! settings and the schema-version check. The hash store
//! (`share::store`) and the download queue (`transfer::queue`) use it; each
//! keeps its own schema and its own error type.
//!
//! Settings: a busy timeout (another process, `dclua hash`, may hold the
//! write lock briefly), WAL with `synchronous=NORMAL` (a crash or `kill -9`
//! leaves the last committed state; a power cut may lose the last commits),
//! foreign keys on.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

/// A failed step: what was being done, and SQLite's error.
pub type Step = (&'static str, rusqlite::Error);

/// How the schema check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The file is at the version this code writes (created now if new).
    Current,
    /// A newer dclua wrote it.
    Newer(i64),
    /// An older version this code cannot read.
    Older(i64),
}

/// Applies the common settings to a new connection; returns the journal
/// mode SQLite chose (`wal`, or `memory` for an in-memory database).
pub fn configure(conn: &Connection) -> Result<String, Step> {
    conn.busy_timeout(Duration::from_secs(10)).map_err(|e| ("setting busy timeout", e))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| ("switching to WAL", e))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(|e| ("setting pragmas", e))?;
    Ok(mode)
}

/// Creates the schema (`create`, at `version`) in a new file, or checks the
/// version of an existing one; one transaction.
pub fn migrate(conn: &mut Connection, version: i64, create: &str) -> Result<Schema, Step> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| ("starting the schema check", e))?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(|e| ("creating the version table", e))?;
    let found: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .map_err(|e| ("reading the schema version", e))?;
    let outcome = match found {
        None => {
            tx.execute_batch(create).map_err(|e| ("creating the schema", e))?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [version])
                .map_err(|e| ("writing the schema version", e))?;
            Schema::Current
        }
        Some(v) if v == version => Schema::Current,
        Some(v) if v > version => return Ok(Schema::Newer(v)),
        Some(v) => return Ok(Schema::Older(v)),
    };
    tx.commit().map_err(|e| ("committing the schema", e))?;
    Ok(outcome)
}
