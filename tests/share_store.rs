//! The hash store across restarts, edits, deletions and kills: a real
//! directory tree in a tempdir, the real scan, hasher and SQLite store.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use dclua::proto::tth::{tree_root, TigerTree, TreeHasher};
use dclua::runtime::helpers::HelperPool;
use dclua::share::hasher::HashedFile;
use dclua::share::scan::{hash_and_store, scan, ScanOptions, ShareRoot, StoreUpdate};
use dclua::share::store::Store;

const FILES: usize = 10_000;

/// Content of test file `n`: small, distinct, some empty, some over a leaf.
fn content(n: usize) -> Vec<u8> {
    let len = (n * 37) % 3000;
    let mut data = format!("file {n}\n").into_bytes();
    data.resize(len.max(data.len()), (n % 251) as u8);
    if n % 500 == 0 {
        data.clear();
    }
    data
}

fn make_tree(root: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::with_capacity(FILES);
    for n in 0..FILES {
        let dir = root.join(format!("d{:02}/e{}", n % 40, n % 7));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("f{n:05}.bin"));
        fs::write(&path, content(n)).unwrap();
        paths.push(path);
    }
    paths
}

/// One "start" of the client: open the store, scan, hash what is needed,
/// store it. Returns what happened and how many files were hashed, counted
/// here, one by one.
fn start(db: &Path, roots: &[ShareRoot], pool: &HelperPool) -> (StoreUpdate, usize, Vec<PathBuf>) {
    let mut store = Store::open(db).unwrap();
    let scanned = scan(roots, &ScanOptions::default()).unwrap();
    assert!(scanned.problems.is_empty(), "{:?}", scanned.problems);
    let mut hashed = Vec::new();
    let update = hash_and_store(&mut store, &scanned, pool, |b| b, &mut |h: &HashedFile| {
        hashed.push(h.path.clone());
    })
    .unwrap();
    assert!(update.failed.is_empty(), "{:?}", update.failed);
    assert_eq!(update.roots.len(), scanned.files.len());
    // Every shared file has its right TTH, hashed now or remembered.
    for (file, root) in scanned.files.iter().zip(&update.roots) {
        let n: usize = file.virtual_path.rsplit_once("/f").unwrap().1[..5].parse().unwrap();
        let want = if file.virtual_path.ends_with(".edited") {
            tree_root(b"edited")
        } else {
            tree_root(&content(n))
        };
        assert_eq!(*root, Some(want), "{}", file.virtual_path);
    }
    let count = hashed.len();
    (update, count, hashed)
}

#[test]
fn restart_hashes_nothing_touch_rehashes_one_delete_removes_one() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    let paths = make_tree(&share);
    let db = dir.path().join("state/hashes.sqlite");
    let roots = [ShareRoot::new("Share", share.clone())];
    let pool = HelperPool::new(2);

    // First start: everything is hashed.
    let (update, hashed, _) = start(&db, &roots, &pool);
    assert_eq!(hashed, FILES);
    assert_eq!(update.hashed, FILES);
    assert_eq!((update.known, update.removed), (0, 0));

    // Restart: nothing is hashed again.
    let (update, hashed, _) = start(&db, &roots, &pool);
    assert_eq!(hashed, 0);
    assert_eq!(update.known, FILES);

    // Touch one file (new mtime, same content): only it is hashed again.
    let touched = fs::canonicalize(&paths[1234]).unwrap();
    let later = SystemTime::now() + Duration::from_secs(5);
    fs::File::options().write(true).open(&touched).unwrap().set_modified(later).unwrap();
    let (update, hashed, which) = start(&db, &roots, &pool);
    assert_eq!(hashed, 1);
    assert_eq!(which, vec![touched.clone()]);
    assert_eq!(update.known, FILES - 1);

    // Rewrite one file under a new name and delete another: the new one is
    // hashed, the deleted one leaves the store.
    let deleted = fs::canonicalize(&paths[42]).unwrap();
    fs::remove_file(&deleted).unwrap();
    let renamed = fs::canonicalize(&paths[4321]).unwrap();
    let edited = renamed.with_file_name("f04321.bin.edited");
    fs::rename(&renamed, &edited).unwrap();
    fs::write(&edited, b"edited").unwrap();
    let (update, hashed, which) = start(&db, &roots, &pool);
    assert_eq!(hashed, 1);
    assert_eq!(which, vec![edited.clone()]);
    assert_eq!(update.removed, 2, "the deleted file and the old name");

    let store = Store::open(&db).unwrap();
    assert_eq!(store.len().unwrap(), FILES as u64 - 1);
    assert_eq!(store.get(&deleted).unwrap(), None);
    assert_eq!(store.get(&renamed).unwrap(), None);
    let e = store.get(&edited).unwrap().unwrap();
    assert_eq!(e.root, tree_root(b"edited"));
    // The trees are there for uploads (TTHL) and match their roots.
    let t = store.get(&touched).unwrap().unwrap();
    let tree = store.tree(&t.root).unwrap().unwrap();
    assert_eq!(tree.leaves, vec![t.root.0]);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());

    // And once more: a stable share hashes nothing.
    drop(store);
    let (_, hashed, _) = start(&db, &roots, &pool);
    assert_eq!(hashed, 0);
}

/// Set in the child process that `a_kill_at_any_moment...` starts and kills.
const CHILD_ENV: &str = "DCLUA_TEST_STORE_WRITER_DB";
const BATCH: usize = 300;

/// A batch of fake hashed files under `/batch/{n}/`, with real trees (some
/// of several leaves, many shared between files).
fn batch(n: usize, trees: &[TigerTree]) -> Vec<HashedFile> {
    (0..BATCH)
        .map(|i| {
            let tree = trees[(n + i) % trees.len()].clone();
            HashedFile {
                path: PathBuf::from(format!("/batch/{n}/{i}")),
                size: tree.size,
                mtime: (n * 1000 + i) as i64,
                tree,
            }
        })
        .collect()
}

fn sample_trees() -> Vec<TigerTree> {
    (0..30)
        .map(|k| {
            let mut h = TreeHasher::new();
            h.update(&vec![k as u8; [10, 70_000, 200_000][k % 3]]);
            h.finish()
        })
        .collect()
}

/// Writes batches and removes older ones, one transaction each. In the child
/// process it goes on until killed (bounded at a minute); run alone it writes
/// a few and checks them after a reopen.
#[test]
fn writer_batches() {
    let child_db = std::env::var_os(CHILD_ENV);
    let dir = tempfile::tempdir().unwrap();
    let db = child_db.as_ref().map_or_else(|| dir.path().join("w.sqlite"), PathBuf::from);
    let trees = sample_trees();
    let mut store = Store::open(&db).unwrap();
    let start = Instant::now();
    let rounds = if child_db.is_some() { usize::MAX } else { 7 };
    for n in 0..rounds {
        store.put_many(&batch(n, &trees)).unwrap();
        if n % 3 == 0 && n >= 2 {
            let old: Vec<PathBuf> =
                (0..BATCH).map(|i| PathBuf::from(format!("/batch/{}/{i}", n - 2))).collect();
            store.remove(old.iter().map(PathBuf::as_path)).unwrap();
        }
        if child_db.is_some() && start.elapsed() > Duration::from_secs(60) {
            return;
        }
    }
    drop(store);
    let store = Store::open(&db).unwrap();
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    assert_all_or_nothing(&store);
    // Batches 0..7, minus 1 and 4 removed at 3 and 6.
    assert_eq!(store.len().unwrap(), 5 * BATCH as u64);
    assert_eq!(store.get(Path::new("/batch/4/0")).unwrap(), None);
}

/// Every batch is in the store entirely or not at all.
fn assert_all_or_nothing(store: &Store) {
    let mut per_batch = std::collections::BTreeMap::<String, usize>::new();
    store
        .for_each_sorted(|path, _, _, _| {
            let path = String::from_utf8_lossy(path);
            let n = path.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
            *per_batch.entry(n).or_default() += 1;
            true
        })
        .unwrap();
    for (batch, count) in per_batch {
        assert_eq!(count, BATCH, "batch {batch} is torn");
    }
}

#[test]
fn a_kill_at_any_moment_leaves_a_consistent_store() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return; // in the child, only `writer_batches` runs
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.sqlite");
    let exe = std::env::current_exe().unwrap();
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer_batches", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Different moments: while opening, mid-batch, mid-removal.
        let delay = 30 + (rand::random::<u64>() % 400) + round * 37;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL: no destructor, no flush
        child.wait().unwrap();

        let store = Store::open(&db).unwrap();
        assert_eq!(store.check().unwrap(), Vec::<String>::new(), "round {round}");
        assert_all_or_nothing(&store);
    }
    let store = Store::open(&db).unwrap();
    assert!(store.len().unwrap() > 0, "the writer never committed anything");
}
