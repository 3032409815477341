//! The persistent hash store: (path, size, mtime) → TTH root and leaves, in
//! SQLite, so that a restart hashes nothing again.
//!
//! This module owns the database file and its schema; it never reads the
//! files it describes (that is [`super::hasher`]) and never decides what to
//! hash (that is [`super::scan`]).
//!
//! Schema (version 1):
//! - `trees(tth PK, size, block_size, leaves)`: one Tiger tree per distinct
//!   content; `leaves` is the TTHL (24-byte hashes left to right).
//! - `files(path PK, size, mtime, tth → trees)`: one row per hashed file.
//!   `path` is the path's raw bytes (Unix paths need not be UTF-8); `mtime`
//!   is nanoseconds since the Unix epoch. A row is valid only while the file
//!   still has that size and mtime.
//! - `schema_version(version)`: one row; a store from a newer dclua is refused.
//!
//! Invariants: every `files.tth` has its `trees` row (a foreign key); a tree
//! with no file left is deleted with its last file; every change is one
//! transaction. The journal is WAL with `synchronous=NORMAL`: a crash or kill
//! at any moment leaves the last committed state or an earlier one, never a
//! torn one (a power cut may lose the last commits, which are then hashed
//! again). One connection, used by one thread at a time.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::hasher::HashedFile;
use crate::proto::tth::{leaf_count, TigerTree, Tth, BASE_BLOCK_SIZE};

/// The schema this code writes.
pub const SCHEMA_VERSION: i64 = 1;

/// The database file name inside the data folder.
pub const FILE_NAME: &str = "hashes.sqlite";

/// A failed store operation: what was being done, and SQLite's reason.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("hash store {}: {what}: {source}", db.display())]
    Sql {
        /// The database file.
        db: PathBuf,
        /// What was being done.
        what: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The folder for the database could not be created.
    #[error("hash store {}: creating its folder: {source}", db.display())]
    Folder {
        /// The database file.
        db: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store was written by a newer dclua.
    #[error("hash store {}: schema version {found} is newer than this dclua ({SCHEMA_VERSION}); use a newer dclua or another store", db.display())]
    TooNew {
        /// The database file.
        db: PathBuf,
        /// The version found.
        found: i64,
    },
    /// A row does not hold what the schema promises (a damaged store).
    #[error("hash store {}: damaged entry: {what}", db.display())]
    Damaged {
        /// The database file.
        db: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A value cannot be stored (a size beyond 2^63).
    #[error("hash store {}: cannot store {what}", db.display())]
    OutOfRange {
        /// The database file.
        db: PathBuf,
        /// What was out of range.
        what: String,
    },
}

/// One file as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// The file's path.
    pub path: PathBuf,
    /// Size when hashed.
    pub size: u64,
    /// Modification time when hashed (nanoseconds since the Unix epoch).
    pub mtime: i64,
    /// The TTH.
    pub root: Tth,
}

/// The persistent hash store (one SQLite connection).
pub struct Store {
    conn: Connection,
    db: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("db", &self.db).finish()
    }
}

/// Turns an SQLite error into a [`StoreError`] saying what was being done.
fn sql_err<'a>(
    db: &'a Path,
    what: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    move |source| StoreError::Sql { db: db.to_owned(), what, source }
}

/// The bytes a path is stored as (its OS bytes on Unix).
pub(crate) fn path_bytes(path: &Path) -> Cow<'_, [u8]> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Cow::Borrowed(path.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    {
        match path.to_string_lossy() {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        }
    }
}

/// The path stored as `bytes`.
pub(crate) fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// Version 1. `trees` keeps its rowid: its rows (up to 12 KiB of leaves) are
/// too big for a WITHOUT ROWID table; `files` rows are small and keyed by
/// path, so they live in the primary-key B-tree itself.
const SCHEMA_V1: &str = "
    CREATE TABLE trees (
        tth BLOB PRIMARY KEY NOT NULL CHECK (length(tth) = 24),
        size INTEGER NOT NULL CHECK (size >= 0),
        block_size INTEGER NOT NULL CHECK (block_size >= 1024),
        leaves BLOB NOT NULL CHECK (length(leaves) > 0 AND length(leaves) % 24 = 0)
    );
    CREATE TABLE files (
        path BLOB PRIMARY KEY NOT NULL,
        size INTEGER NOT NULL CHECK (size >= 0),
        mtime INTEGER NOT NULL,
        tth BLOB NOT NULL REFERENCES trees (tth)
    ) WITHOUT ROWID;
    CREATE INDEX files_by_tth ON files (tth);
";

impl Store {
    /// The usual place: `hashes.sqlite` in dclua's XDG data folder.
    pub fn default_path() -> Option<PathBuf> {
        dirs::data_dir().map(|d| d.join("dclua").join(FILE_NAME))
    }

    /// Opens (creating if needed, with its folder) the store at `db`.
    pub fn open(db: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| StoreError::Folder { db: db.to_owned(), source })?;
        }
        let conn = Connection::open(db).map_err(|source| StoreError::Sql {
            db: db.to_owned(),
            what: "opening",
            source,
        })?;
        Store::setup(conn, db.to_owned())
    }

    /// A store in memory (for tests and one-off runs).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let db = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sql {
            db: db.clone(),
            what: "opening",
            source,
        })?;
        Store::setup(conn, db)
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db
    }

    fn sql(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        sql_err(&self.db, what)
    }

    fn setup(mut conn: Connection, db: PathBuf) -> Result<Store, StoreError> {
        let step =
            |(what, source): crate::sqlite::Step| StoreError::Sql { db: db.clone(), what, source };
        let mode = crate::sqlite::configure(&conn).map_err(step)?;
        if mode != "wal" && mode != "memory" {
            log::warn!("hash store {}: journal mode is {mode}, not WAL", db.display());
        }
        match crate::sqlite::migrate(&mut conn, SCHEMA_VERSION, SCHEMA_V1).map_err(step)? {
            crate::sqlite::Schema::Current => Ok(Store { conn, db }),
            crate::sqlite::Schema::Newer(found) => Err(StoreError::TooNew { db, found }),
            crate::sqlite::Schema::Older(found) => {
                Err(StoreError::Damaged { db, what: format!("unknown schema version {found}") })
            }
        }
    }

    /// Stores one hashed file (one transaction).
    pub fn put(&mut self, file: &HashedFile) -> Result<(), StoreError> {
        self.put_many(std::iter::once(file)).map(|_| ())
    }

    /// Stores many hashed files in one transaction (all or none); replaces
    /// older entries of the same paths. Returns how many were written.
    pub fn put_many<'a>(
        &mut self,
        files: impl IntoIterator<Item = &'a HashedFile>,
    ) -> Result<usize, StoreError> {
        let db = self.db.clone();
        let sql = |what| sql_err(&db, what);
        let range = |what: String| StoreError::OutOfRange { db: self.db.clone(), what };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("starting a write"))?;
        let mut count = 0;
        {
            let mut old_tth = tx
                .prepare_cached("SELECT tth FROM files WHERE path = ?1")
                .map_err(sql("preparing"))?;
            let mut put_tree = tx
                .prepare_cached(
                    "INSERT INTO trees (tth, size, block_size, leaves) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tth) DO NOTHING",
                )
                .map_err(sql("preparing"))?;
            let mut put_file = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO files (path, size, mtime, tth) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql("preparing"))?;
            let mut drop_orphan = tx
                .prepare_cached(
                    "DELETE FROM trees WHERE tth = ?1 \
                     AND NOT EXISTS (SELECT 1 FROM files WHERE tth = ?1)",
                )
                .map_err(sql("preparing"))?;
            for file in files {
                let key = path_bytes(&file.path);
                let size = i64::try_from(file.size)
                    .map_err(|_| range(format!("size {} of {}", file.size, file.path.display())))?;
                let block = i64::try_from(file.tree.block_size).map_err(|_| {
                    range(format!("block size {} of {}", file.tree.block_size, file.path.display()))
                })?;
                let previous: Option<Vec<u8>> = old_tth
                    .query_row([key.as_ref()], |r| r.get(0))
                    .optional()
                    .map_err(sql("reading an old entry"))?;
                let root = file.tree.root.as_bytes();
                put_tree
                    .execute(params![&root[..], size, block, file.tree.to_tthl()])
                    .map_err(sql("writing a tree"))?;
                put_file
                    .execute(params![key.as_ref(), size, file.mtime, &root[..]])
                    .map_err(sql("writing a file"))?;
                if let Some(previous) = previous.filter(|p| p.as_slice() != root) {
                    drop_orphan.execute([previous]).map_err(sql("dropping an unused tree"))?;
                }
                count += 1;
            }
        }
        tx.commit().map_err(sql("committing a write"))?;
        Ok(count)
    }

    /// Removes the entries of `paths` (files gone from disk or from the
    /// share) and the trees no file uses any more, in one transaction.
    /// Returns how many entries were removed.
    pub fn remove<'a>(
        &mut self,
        paths: impl IntoIterator<Item = &'a Path>,
    ) -> Result<usize, StoreError> {
        let db = self.db.clone();
        let sql = |what| sql_err(&db, what);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("starting a removal"))?;
        let mut removed = 0;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM files WHERE path = ?1 RETURNING tth")
                .map_err(sql("preparing"))?;
            let mut drop_orphan = tx
                .prepare_cached(
                    "DELETE FROM trees WHERE tth = ?1 \
                     AND NOT EXISTS (SELECT 1 FROM files WHERE tth = ?1)",
                )
                .map_err(sql("preparing"))?;
            for path in paths {
                let tth: Option<Vec<u8>> = delete
                    .query_row([path_bytes(path).as_ref()], |r| r.get(0))
                    .optional()
                    .map_err(sql("removing a file"))?;
                if let Some(tth) = tth {
                    drop_orphan.execute([tth]).map_err(sql("dropping an unused tree"))?;
                    removed += 1;
                }
            }
        }
        tx.commit().map_err(sql("committing a removal"))?;
        Ok(removed)
    }

    /// The entry for `path`, whatever the file looks like now.
    pub fn get(&self, path: &Path) -> Result<Option<StoredFile>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size, mtime, tth FROM files WHERE path = ?1")
            .map_err(self.sql("preparing"))?;
        let row: Option<(i64, i64, Vec<u8>)> = stmt
            .query_row([path_bytes(path).as_ref()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(self.sql("looking up a path"))?;
        let Some((size, mtime, tth)) = row else { return Ok(None) };
        Ok(Some(StoredFile {
            path: path.to_owned(),
            size: self.size(size)?,
            mtime,
            root: self.tth(&tth)?,
        }))
    }

    /// The TTH of `path` if the store has it for exactly this size and mtime
    /// (the file is unchanged since it was hashed).
    pub fn lookup(&self, path: &Path, size: u64, mtime: i64) -> Result<Option<Tth>, StoreError> {
        Ok(self.get(path)?.filter(|f| f.size == size && f.mtime == mtime).map(|f| f.root))
    }

    /// The tree (root and leaves) of `root`, if some stored file has it.
    pub fn tree(&self, root: &Tth) -> Result<Option<TigerTree>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size, block_size, leaves FROM trees WHERE tth = ?1")
            .map_err(self.sql("preparing"))?;
        let row: Option<(i64, i64, Vec<u8>)> = stmt
            .query_row([&root.as_bytes()[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(self.sql("looking up a tree"))?;
        let Some((size, block_size, leaves)) = row else { return Ok(None) };
        let size = self.size(size)?;
        // Checked on the way out: a damaged row must not reach a peer.
        let mut tree = TigerTree::from_tthl(size, *root, &leaves).map_err(|e| {
            StoreError::Damaged { db: self.db.clone(), what: format!("tree {root}: {e}") }
        })?;
        // One leaf fits any block size covering the file (DC++ keeps 64 KiB
        // for small files, a receiver works out the smallest): keep the
        // stored one if it describes the same leaves.
        match u64::try_from(block_size) {
            Ok(block)
                if block >= BASE_BLOCK_SIZE
                    && block.is_power_of_two()
                    && leaf_count(size, block) == tree.leaves.len() as u64 =>
            {
                tree.block_size = block;
            }
            _ => {
                return Err(StoreError::Damaged {
                    db: self.db.clone(),
                    what: format!(
                        "tree {root}: block size {block_size} does not fit {} leaves",
                        tree.leaves.len()
                    ),
                })
            }
        }
        Ok(Some(tree))
    }

    /// The stored paths whose content has TTH `root`.
    pub fn paths_of(&self, root: &Tth) -> Result<Vec<PathBuf>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path FROM files WHERE tth = ?1 ORDER BY path")
            .map_err(self.sql("preparing"))?;
        let rows = stmt
            .query_map([&root.as_bytes()[..]], |r| r.get::<_, Vec<u8>>(0))
            .map_err(self.sql("looking up paths by TTH"))?;
        rows.map(|r| r.map(|b| path_from_bytes(&b)).map_err(self.sql("reading a path"))).collect()
    }

    /// Number of stored files.
    pub fn len(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
            .map_err(self.sql("counting files"))?;
        Ok(n.max(0) as u64)
    }

    /// Whether the store holds no file.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Calls `f` for every stored file in ascending order of path bytes
    /// (one read, one consistent snapshot). `f` returning `false` stops.
    pub fn for_each_sorted(
        &self,
        mut f: impl FnMut(&[u8], u64, i64, Tth) -> bool,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, size, mtime, tth FROM files ORDER BY path")
            .map_err(self.sql("preparing"))?;
        let mut rows = stmt.query([]).map_err(self.sql("listing files"))?;
        while let Some(row) = rows.next().map_err(self.sql("listing files"))? {
            let path = row.get_ref(0).and_then(|v| v.as_blob().map_err(Into::into));
            let path = path.map_err(self.sql("reading a path"))?;
            let size: i64 = row.get(1).map_err(self.sql("reading a size"))?;
            let mtime: i64 = row.get(2).map_err(self.sql("reading an mtime"))?;
            let tth = row.get_ref(3).and_then(|v| v.as_blob().map_err(Into::into));
            let tth = tth.map_err(self.sql("reading a TTH"))?;
            if !f(path, self.size(size)?, mtime, self.tth(tth)?) {
                break;
            }
        }
        Ok(())
    }

    /// Checks the whole database: SQLite's integrity check, the foreign keys,
    /// and every tree against its root. Returns the problems found (none on a
    /// healthy store). Slow on a big store; for diagnostics and tests.
    pub fn check(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        let mut stmt = self.conn.prepare("PRAGMA integrity_check").map_err(self.sql("checking"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(self.sql("checking"))?;
        for row in rows {
            let row = row.map_err(self.sql("checking"))?;
            if row != "ok" {
                problems.push(row);
            }
        }
        let mut stmt =
            self.conn.prepare("PRAGMA foreign_key_check").map_err(self.sql("checking"))?;
        let mut rows = stmt.query([]).map_err(self.sql("checking"))?;
        while rows.next().map_err(self.sql("checking"))?.is_some() {
            problems.push("a file refers to a missing tree".into());
        }
        let mut stmt = self.conn.prepare("SELECT tth FROM trees").map_err(self.sql("checking"))?;
        let roots = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).map_err(self.sql("checking"))?;
        for root in roots {
            let root = self.tth(&root.map_err(self.sql("checking"))?)?;
            if let Err(e) = self.tree(&root) {
                problems.push(e.to_string());
            }
        }
        Ok(problems)
    }

    fn size(&self, size: i64) -> Result<u64, StoreError> {
        u64::try_from(size).map_err(|_| StoreError::Damaged {
            db: self.db.clone(),
            what: format!("negative size {size}"),
        })
    }

    fn tth(&self, bytes: &[u8]) -> Result<Tth, StoreError> {
        let arr: [u8; 24] = bytes.try_into().map_err(|_| StoreError::Damaged {
            db: self.db.clone(),
            what: format!("a TTH of {} bytes", bytes.len()),
        })?;
        Ok(Tth(arr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tth::TreeHasher;

    fn hashed(path: &str, data: &[u8], mtime: i64) -> HashedFile {
        let mut h = TreeHasher::new();
        h.update(data);
        HashedFile { path: path.into(), size: data.len() as u64, mtime, tree: h.finish() }
    }

    #[test]
    fn put_lookup_remove() {
        let mut store = Store::open_in_memory().unwrap();
        let a = hashed("/s/a", b"alpha", 10);
        let b = hashed("/s/b", &vec![7u8; 200_000], 20);
        let b_twin = hashed("/s/b2", &vec![7u8; 200_000], 30);
        assert_eq!(store.put_many([&a, &b, &b_twin]).unwrap(), 3);
        assert_eq!(store.len().unwrap(), 3);

        assert_eq!(store.lookup(Path::new("/s/a"), 5, 10).unwrap(), Some(a.tree.root));
        assert_eq!(store.lookup(Path::new("/s/a"), 5, 11).unwrap(), None, "mtime changed");
        assert_eq!(store.lookup(Path::new("/s/a"), 6, 10).unwrap(), None, "size changed");
        assert_eq!(store.lookup(Path::new("/s/zzz"), 5, 10).unwrap(), None);
        assert_eq!(store.tree(&b.tree.root).unwrap(), Some(b.tree.clone()));
        assert_eq!(
            store.paths_of(&b.tree.root).unwrap(),
            vec![PathBuf::from("/s/b"), PathBuf::from("/s/b2")]
        );

        // Removing one twin keeps the shared tree; removing both drops it.
        assert_eq!(store.remove([Path::new("/s/b")]).unwrap(), 1);
        assert!(store.tree(&b.tree.root).unwrap().is_some());
        assert_eq!(store.remove([Path::new("/s/b2"), Path::new("/s/nope")]).unwrap(), 1);
        assert_eq!(store.tree(&b.tree.root).unwrap(), None);

        // Re-hashing a path replaces its entry and drops the old tree.
        let a2 = hashed("/s/a", b"alpha, longer", 40);
        store.put(&a2).unwrap();
        assert_eq!(store.get(Path::new("/s/a")).unwrap().unwrap().root, a2.tree.root);
        assert_eq!(store.tree(&a.tree.root).unwrap(), None);
        assert_eq!(store.len().unwrap(), 1);
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn sorted_listing_and_non_utf8_paths() {
        let mut store = Store::open_in_memory().unwrap();
        #[cfg(unix)]
        let odd = {
            use std::os::unix::ffi::OsStrExt;
            PathBuf::from(std::ffi::OsStr::from_bytes(b"/s/\xff\xfe"))
        };
        #[cfg(not(unix))]
        let odd = PathBuf::from("/s/odd");
        let mut files = vec![hashed("/s/b", b"b", 1), hashed("/s/a", b"a", 1)];
        let mut o = hashed("", b"o", 1);
        o.path = odd.clone();
        files.push(o);
        store.put_many(&files).unwrap();
        let mut seen = Vec::new();
        store
            .for_each_sorted(|p, _, _, _| {
                seen.push(path_from_bytes(p));
                true
            })
            .unwrap();
        assert_eq!(seen, vec![PathBuf::from("/s/a"), PathBuf::from("/s/b"), odd.clone()]);
        assert!(store.get(&odd).unwrap().is_some());
    }

    #[test]
    fn schema_version_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub/hashes.sqlite");
        {
            let mut store = Store::open(&db).unwrap();
            store.put(&hashed("/x", b"x", 1)).unwrap();
        }
        let store = Store::open(&db).unwrap();
        assert_eq!(store.len().unwrap(), 1);
        let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        store.conn.execute("UPDATE schema_version SET version = 99", []).unwrap();
        drop(store);
        let err = Store::open(&db).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("hashes.sqlite"), "{err}");
    }
}
