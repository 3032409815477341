//! The persistent download queue: what to download, from whom, and which
//! bytes of it are already verified, in SQLite beside the hash store.
//!
//! Decision (issue 11): SQLite rather than a file rewritten atomically. The
//! queue changes a little at a time (a verified block every few hundred KiB
//! of every running download, a source found by a search) and must survive
//! `kill -9` at any of those moments; one small transaction per change in
//! WAL mode does exactly that, where rewriting a whole file per block would
//! not scale to a long queue. rusqlite (bundled) is already the hash store's.
//!
//! Schema (version 1), in `queue.sqlite` in the data folder:
//! - `items(id PK, tth UNIQUE, size, name, dir, priority, state, error, added)`:
//!   one row per file to download. `name` is already made safe
//!   ([`super::place::safe_relative`]); `dir` is the target folder (raw
//!   path bytes). A TTH is queued at most once.
//! - `sources(item → items, hub, user, nick)`: who has it. `user` is the
//!   CID on ADC and the nick on NMDC (the only stable key there is); `nick`
//!   is for display. Unique per (item, hub, user).
//! - `verified(item → items, start, end)`: the byte ranges whose TTH
//!   blocks were checked, as a [`RangeSet`] (disjoint, merged).
//! - `schema_version(version)`: one row; a queue from a newer dclua is refused.
//!
//! Invariants: every change is one transaction; a range is recorded only
//! after its bytes are on disk and verified (the downloader syncs the file
//! before calling [`QueueStore::mark_verified`]), so that after a crash
//! every recorded byte can be trusted and unrecorded ones are fetched
//! again. Deleting an item deletes its sources and ranges (foreign keys).
//! One connection, used by the worker thread only.
//!
//! This module stores; it decides nothing about what to fetch next and
//! touches no file but its database.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::ranges::RangeSet;
use crate::proto::tth::Tth;

/// The schema this code writes.
pub const SCHEMA_VERSION: i64 = 1;

/// The database file name inside the data folder.
pub const FILE_NAME: &str = "queue.sqlite";

/// The schema of version 1 (see the module documentation).
const SCHEMA_V1: &str = "CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        tth BLOB NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        name BLOB NOT NULL,
        dir BLOB NOT NULL,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        added INTEGER NOT NULL
    );
    CREATE TABLE sources (
        item INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        hub TEXT NOT NULL,
        user TEXT NOT NULL,
        nick TEXT NOT NULL,
        PRIMARY KEY (item, hub, user)
    );
    CREATE TABLE verified (
        item INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL
    );
    CREATE INDEX verified_item ON verified(item);";

/// A queue item's key (stable across restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub i64);

/// How urgently an item is downloaded; `Paused` items are not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Never started until the priority changes.
    Paused = 0,
    /// Last.
    Lowest = 1,
    /// Before the lowest.
    Low = 2,
    /// The default.
    Normal = 3,
    /// Before normal ones.
    High = 4,
    /// First.
    Highest = 5,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 6] = [
        Priority::Paused,
        Priority::Lowest,
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Highest,
    ];

    /// The name scripts use (`"normal"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Priority::Paused => "paused",
            Priority::Lowest => "lowest",
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Highest => "highest",
        }
    }

    /// The priority of a name given by [`Priority::name`].
    pub fn from_name(name: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.name() == name)
    }

    fn from_i64(v: i64) -> Priority {
        Priority::ALL.into_iter().find(|p| *p as i64 == v).unwrap_or(Priority::Normal)
    }
}

/// Where an item stands, as stored (whether it is running right now is
/// the downloader's business, not the store's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemState {
    /// Waiting for, or in, a download.
    Queued,
    /// Verified and moved into place.
    Done,
    /// Given up on; the item's `error` says why.
    Failed,
}

impl ItemState {
    /// The stored and scripted name.
    pub fn name(self) -> &'static str {
        match self {
            ItemState::Queued => "queued",
            ItemState::Done => "done",
            ItemState::Failed => "failed",
        }
    }

    fn from_name(s: &str) -> ItemState {
        match s {
            "done" => ItemState::Done,
            "failed" => ItemState::Failed,
            _ => ItemState::Queued,
        }
    }
}

/// Someone who has an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    /// The hub's address, as the hub registry names it.
    pub hub: String,
    /// The CID (ADC) or the nick (NMDC): the key the user is found by.
    pub user: String,
    /// The nick, for display.
    pub nick: String,
}

/// A file to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// The file's Tiger tree root.
    pub tth: Tth,
    /// Its size in bytes.
    pub size: u64,
    /// Its name relative to `dir`, already made safe.
    pub name: PathBuf,
    /// The folder it goes to.
    pub dir: PathBuf,
    /// How urgent it is.
    pub priority: Priority,
}

/// A queued item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its key.
    pub id: ItemId,
    /// The file's Tiger tree root.
    pub tth: Tth,
    /// Its size in bytes.
    pub size: u64,
    /// Its name relative to `dir`.
    pub name: PathBuf,
    /// The folder it goes to.
    pub dir: PathBuf,
    /// How urgent it is.
    pub priority: Priority,
    /// Where it stands.
    pub state: ItemState,
    /// Why it failed, or the last transient error.
    pub error: Option<String>,
    /// When it was queued, in seconds since the Unix epoch.
    pub added: i64,
    /// Who has it.
    pub sources: Vec<Source>,
    /// The bytes already verified.
    pub verified: RangeSet,
}

impl Item {
    /// Where the finished file goes (before any clash renaming).
    pub fn target(&self) -> PathBuf {
        self.dir.join(&self.name)
    }
}

/// A failed queue operation: what was being done, and why.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// SQLite refused an operation.
    #[error("download queue {}: {what}: {source}", db.display())]
    Sql {
        /// The database file.
        db: PathBuf,
        /// What was being done.
        what: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The folder for the database could not be created.
    #[error("download queue {}: creating its folder: {source}", db.display())]
    Folder {
        /// The database file.
        db: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The queue was written by a newer dclua.
    #[error("download queue {}: schema version {found} is newer than this dclua's ({SCHEMA_VERSION}); upgrade dclua or move the file away", db.display())]
    Newer {
        /// The database file.
        db: PathBuf,
        /// The version found.
        found: i64,
    },
    /// The TTH is already queued.
    #[error("{tth} is already in the download queue (item {})", id.0)]
    Duplicate {
        /// The TTH.
        tth: Tth,
        /// The item that has it.
        id: ItemId,
    },
    /// No item has that key (removed meanwhile).
    #[error("the download queue has no item {}", .0 .0)]
    NoItem(ItemId),
    /// A range past the end of the file.
    #[error("bytes {start}..{end} are outside item {} of {size} bytes", id.0)]
    OutOfRange {
        /// The item.
        id: ItemId,
        /// Its size.
        size: u64,
        /// The range's start.
        start: u64,
        /// The range's end.
        end: u64,
    },
}

fn sql_err<'a>(
    db: &'a Path,
    what: &'static str,
) -> impl FnOnce(rusqlite::Error) -> QueueError + 'a {
    move |source| QueueError::Sql { db: db.to_path_buf(), what, source }
}

fn path_bytes(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

fn bytes_path(b: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(b))
}

/// The queue's database; see the module documentation.
#[derive(Debug)]
pub struct QueueStore {
    conn: Connection,
    db: PathBuf,
}

impl QueueStore {
    /// Opens (creating if needed) the queue in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<QueueStore, QueueError> {
        let db = data_dir.join(FILE_NAME);
        std::fs::create_dir_all(data_dir)
            .map_err(|source| QueueError::Folder { db: db.clone(), source })?;
        let conn = Connection::open(&db).map_err(sql_err(&db, "opening"))?;
        QueueStore::setup(conn, db)
    }

    /// A queue in memory (tests, `--no-data`).
    pub fn in_memory() -> Result<QueueStore, QueueError> {
        let db = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(sql_err(&db, "opening"))?;
        QueueStore::setup(conn, db)
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db
    }

    fn setup(mut conn: Connection, db: PathBuf) -> Result<QueueStore, QueueError> {
        let step =
            |(what, source): crate::sqlite::Step| QueueError::Sql { db: db.clone(), what, source };
        let mode = crate::sqlite::configure(&conn).map_err(step)?;
        if mode != "wal" && mode != "memory" {
            log::warn!("download queue {}: journal mode is {mode}, not WAL", db.display());
        }
        match crate::sqlite::migrate(&mut conn, SCHEMA_VERSION, SCHEMA_V1).map_err(step)? {
            crate::sqlite::Schema::Current => Ok(QueueStore { conn, db }),
            // An older queue cannot exist yet: version 1 is the first.
            crate::sqlite::Schema::Newer(found) | crate::sqlite::Schema::Older(found) => {
                Err(QueueError::Newer { db, found })
            }
        }
    }

    fn sql(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> QueueError + '_ {
        sql_err(&self.db, what)
    }

    /// Queues a file; a TTH already queued is refused with its item.
    pub fn add(&mut self, item: &NewItem) -> Result<ItemId, QueueError> {
        if let Some(id) = self.find(&item.tth)? {
            return Err(QueueError::Duplicate { tth: item.tth, id });
        }
        let added = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        self.conn
            .execute(
                "INSERT INTO items (tth, size, name, dir, priority, state, added)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
                params![
                    &item.tth.as_bytes()[..],
                    item.size as i64,
                    path_bytes(&item.name),
                    path_bytes(&item.dir),
                    item.priority as i64,
                    added
                ],
            )
            .map_err(sql_err(&self.db, "adding an item"))?;
        Ok(ItemId(self.conn.last_insert_rowid()))
    }

    /// The item that has `tth`, if any.
    pub fn find(&self, tth: &Tth) -> Result<Option<ItemId>, QueueError> {
        self.conn
            .query_row("SELECT id FROM items WHERE tth = ?1", [&tth.as_bytes()[..]], |r| {
                r.get(0).map(ItemId)
            })
            .optional()
            .map_err(self.sql("looking a TTH up"))
    }

    /// Removes an item with its sources and ranges.
    pub fn remove(&mut self, id: ItemId) -> Result<(), QueueError> {
        let n = self
            .conn
            .execute("DELETE FROM items WHERE id = ?1", [id.0])
            .map_err(sql_err(&self.db, "removing an item"))?;
        if n == 0 {
            return Err(QueueError::NoItem(id));
        }
        Ok(())
    }

    fn update(
        &mut self,
        id: ItemId,
        what: &'static str,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<(), QueueError> {
        let n = self.conn.execute(sql, p).map_err(sql_err(&self.db, what))?;
        if n == 0 {
            return Err(QueueError::NoItem(id));
        }
        Ok(())
    }

    /// Changes an item's priority.
    pub fn set_priority(&mut self, id: ItemId, priority: Priority) -> Result<(), QueueError> {
        self.update(
            id,
            "setting a priority",
            "UPDATE items SET priority = ?2 WHERE id = ?1",
            params![id.0, priority as i64],
        )
    }

    /// Records where an item stands and, for a failure, why.
    pub fn set_state(
        &mut self,
        id: ItemId,
        state: ItemState,
        error: Option<&str>,
    ) -> Result<(), QueueError> {
        self.update(
            id,
            "setting a state",
            "UPDATE items SET state = ?2, error = ?3 WHERE id = ?1",
            params![id.0, state.name(), error],
        )
    }

    /// Adds a source (nothing when it is already there; a changed nick is
    /// recorded).
    pub fn add_source(&mut self, id: ItemId, source: &Source) -> Result<(), QueueError> {
        self.conn
            .execute(
                "INSERT INTO sources (item, hub, user, nick) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (item, hub, user) DO UPDATE SET nick = excluded.nick",
                params![id.0, source.hub, source.user, source.nick],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
                {
                    QueueError::NoItem(id)
                }
                source => QueueError::Sql { db: self.db.clone(), what: "adding a source", source },
            })?;
        Ok(())
    }

    /// Removes a source; whether it was there.
    pub fn remove_source(&mut self, id: ItemId, hub: &str, user: &str) -> Result<bool, QueueError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM sources WHERE item = ?1 AND hub = ?2 AND user = ?3",
                params![id.0, hub, user],
            )
            .map_err(sql_err(&self.db, "removing a source"))?;
        Ok(n > 0)
    }

    /// Records `[start, end)` as verified (merged with what already was);
    /// returns the item's verified ranges after the change.
    pub fn mark_verified(
        &mut self,
        id: ItemId,
        start: u64,
        end: u64,
    ) -> Result<RangeSet, QueueError> {
        let db = self.db.clone();
        let sql = |what| sql_err(&db, what);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("starting to record verified bytes"))?;
        let size: Option<i64> = tx
            .query_row("SELECT size FROM items WHERE id = ?1", [id.0], |r| r.get(0))
            .optional()
            .map_err(sql("reading an item's size"))?;
        let Some(size) = size.map(|s| s as u64) else { return Err(QueueError::NoItem(id)) };
        if start > end || end > size {
            return Err(QueueError::OutOfRange { id, size, start, end });
        }
        let mut set = read_ranges(&tx, id).map_err(sql("reading verified bytes"))?;
        let before = set.clone();
        set.insert(start, end);
        if set != before {
            tx.execute("DELETE FROM verified WHERE item = ?1", [id.0])
                .map_err(sql("rewriting verified bytes"))?;
            let mut ins = tx
                .prepare_cached("INSERT INTO verified (item, start, end) VALUES (?1, ?2, ?3)")
                .map_err(sql("rewriting verified bytes"))?;
            for &(s, e) in set.ranges() {
                ins.execute(params![id.0, s as i64, e as i64])
                    .map_err(sql("rewriting verified bytes"))?;
            }
            drop(ins);
        }
        tx.commit().map_err(sql("committing verified bytes"))?;
        Ok(set)
    }

    /// Forgets an item's verified bytes (a source sent a file whose final
    /// TTH did not match: everything is fetched again).
    pub fn clear_verified(&mut self, id: ItemId) -> Result<(), QueueError> {
        self.conn
            .execute("DELETE FROM verified WHERE item = ?1", [id.0])
            .map_err(sql_err(&self.db, "clearing verified bytes"))?;
        Ok(())
    }

    /// One item with its sources and verified ranges.
    pub fn item(&self, id: ItemId) -> Result<Option<Item>, QueueError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, tth, size, name, dir, priority, state, error, added FROM items WHERE id = ?1",
                [id.0],
                read_item,
            )
            .optional()
            .map_err(self.sql("reading an item"))?;
        let Some(mut item) = row else { return Ok(None) };
        self.fill(&mut item)?;
        Ok(Some(item))
    }

    /// Every item, highest priority first, then oldest first.
    pub fn items(&self) -> Result<Vec<Item>, QueueError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, tth, size, name, dir, priority, state, error, added FROM items
                 ORDER BY priority DESC, id ASC",
            )
            .map_err(self.sql("listing items"))?;
        let mut items: Vec<Item> = stmt
            .query_map([], read_item)
            .map_err(self.sql("listing items"))?
            .collect::<Result<_, _>>()
            .map_err(self.sql("listing items"))?;
        drop(stmt);
        for item in &mut items {
            self.fill(item)?;
        }
        Ok(items)
    }

    fn fill(&self, item: &mut Item) -> Result<(), QueueError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hub, user, nick FROM sources WHERE item = ?1 ORDER BY rowid")
            .map_err(self.sql("reading sources"))?;
        item.sources = stmt
            .query_map([item.id.0], |r| {
                Ok(Source { hub: r.get(0)?, user: r.get(1)?, nick: r.get(2)? })
            })
            .map_err(self.sql("reading sources"))?
            .collect::<Result<_, _>>()
            .map_err(self.sql("reading sources"))?;
        item.verified =
            read_ranges(&self.conn, item.id).map_err(self.sql("reading verified bytes"))?;
        Ok(())
    }
}

fn read_ranges(conn: &Connection, id: ItemId) -> rusqlite::Result<RangeSet> {
    let mut stmt = conn.prepare_cached("SELECT start, end FROM verified WHERE item = ?1")?;
    let ranges = stmt
        .query_map([id.0], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(RangeSet::from_ranges(ranges))
}

fn read_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let tth_bytes: Vec<u8> = r.get(1)?;
    let tth = <[u8; 24]>::try_from(tth_bytes.as_slice()).map(Tth).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Blob,
            format!("a TTH of {} bytes, not 24", tth_bytes.len()).into(),
        )
    })?;
    Ok(Item {
        id: ItemId(r.get(0)?),
        tth,
        size: r.get::<_, i64>(2)? as u64,
        name: bytes_path(r.get(3)?),
        dir: bytes_path(r.get(4)?),
        priority: Priority::from_i64(r.get(5)?),
        state: ItemState::from_name(&r.get::<_, String>(6)?),
        error: r.get(7)?,
        added: r.get(8)?,
        sources: Vec::new(),
        verified: RangeSet::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tth(n: u8) -> Tth {
        Tth([n; 24])
    }

    fn new_item(n: u8, priority: Priority) -> NewItem {
        NewItem {
            tth: tth(n),
            size: 10_000,
            name: PathBuf::from(format!("dir/file{n}.bin")),
            dir: PathBuf::from("/downloads"),
            priority,
        }
    }

    #[test]
    fn items_sources_and_ranges_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b);
        {
            let mut q = QueueStore::open(dir.path()).unwrap();
            a = q.add(&new_item(1, Priority::Normal)).unwrap();
            b = q.add(&new_item(2, Priority::High)).unwrap();
            let src = Source {
                hub: "adc://127.0.0.1:1511".into(),
                user: "CIDCIDCID".into(),
                nick: "fay".into(),
            };
            q.add_source(a, &src).unwrap();
            q.add_source(a, &Source { nick: "fay2".into(), ..src.clone() }).unwrap();
            q.add_source(
                a,
                &Source {
                    hub: "dchub://127.0.0.1:411".into(),
                    user: "bob".into(),
                    nick: "bob".into(),
                },
            )
            .unwrap();
            q.mark_verified(a, 0, 1024).unwrap();
            q.mark_verified(a, 2048, 4096).unwrap();
            let set = q.mark_verified(a, 1024, 2048).unwrap();
            assert_eq!(set.ranges(), &[(0, 4096)]);
            q.set_state(b, ItemState::Failed, Some("no source has it")).unwrap();
            // Dropped without any close: as a kill -9 would leave it.
        }
        let q = QueueStore::open(dir.path()).unwrap();
        let items = q.items().unwrap();
        assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), [b, a], "priority order");
        let ia = &items[1];
        assert_eq!(ia.tth, tth(1));
        assert_eq!(ia.target(), Path::new("/downloads/dir/file1.bin"));
        assert_eq!(ia.sources.len(), 2);
        assert_eq!(ia.sources[0].nick, "fay2");
        assert_eq!(ia.verified.ranges(), &[(0, 4096)]);
        assert_eq!(items[0].state, ItemState::Failed);
        assert_eq!(items[0].error.as_deref(), Some("no source has it"));
        let rows: i64 =
            q.conn.query_row("SELECT count(*) FROM verified", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1, "verified ranges are stored merged");
    }

    #[test]
    fn duplicates_missing_items_and_bad_ranges_are_errors() {
        let mut q = QueueStore::in_memory().unwrap();
        let a = q.add(&new_item(1, Priority::Normal)).unwrap();
        let e = q.add(&new_item(1, Priority::Low)).unwrap_err();
        assert!(matches!(e, QueueError::Duplicate { id, .. } if id == a), "{e}");
        assert!(e.to_string().contains("already in the download queue"), "{e}");
        let e = q.mark_verified(a, 9_000, 10_001).unwrap_err();
        assert!(matches!(e, QueueError::OutOfRange { .. }), "{e}");
        q.remove(a).unwrap();
        assert!(matches!(q.remove(a), Err(QueueError::NoItem(_))));
        assert!(matches!(q.set_priority(a, Priority::High), Err(QueueError::NoItem(_))));
        let src = Source { hub: "h".into(), user: "u".into(), nick: "n".into() };
        assert!(matches!(q.add_source(a, &src), Err(QueueError::NoItem(_))));
        assert!(matches!(q.mark_verified(a, 0, 1), Err(QueueError::NoItem(_))));
        assert_eq!(q.item(a).unwrap(), None);
    }

    #[test]
    fn removing_an_item_takes_its_sources_and_ranges() {
        let mut q = QueueStore::in_memory().unwrap();
        let a = q.add(&new_item(1, Priority::Normal)).unwrap();
        q.add_source(a, &Source { hub: "h".into(), user: "u".into(), nick: "n".into() }).unwrap();
        q.mark_verified(a, 0, 10).unwrap();
        q.remove(a).unwrap();
        for table in ["sources", "verified"] {
            let n: i64 = q
                .conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0, "{table}");
        }
        assert!(q.remove_source(a, "h", "u").is_ok_and(|gone| !gone));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(QueueStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute("INSERT INTO schema_version (version) VALUES (99)", []).unwrap();
        drop(conn);
        let e = QueueStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, QueueError::Newer { found: 99, .. }), "{e}");
    }

    #[test]
    fn priorities_have_names() {
        for p in Priority::ALL {
            assert_eq!(Priority::from_name(p.name()), Some(p));
            assert_eq!(Priority::from_i64(p as i64), p);
        }
        assert_eq!(Priority::from_name("urgent"), None);
    }
}
