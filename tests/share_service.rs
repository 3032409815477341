//! The share service on a real worker with a Lua host: a temporary share of a
//! few hundred files is scanned, hashed, searchable through `dc.share.find`
//! and `ShareService::answer`, listed in `files.xml.bz2`; a restart hashes
//! nothing, a touched file alone is hashed again, a deleted one leaves the
//! list; `dc.tth` agrees with `rhash`; the events arrive.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dclua::client::{Client, ClientOptions, ShareSetup};
use dclua::lua::{ChunkOutcome, HostHooks, HostOptions};
use dclua::proto::tth::tree_root;
use dclua::runtime::{Worker, WorkerConfig, WorkerHandle};
use dclua::search::{FileType, Query, MAX_RESULTS_PASSIVE};
use dclua::share::filelist::{read_listing, ListDir, ReadLimits};
use dclua::share::service::{ShareOptions, ShareService, SharedFolder, LIST_FILE};

const FILES: usize = 300;
const CID: &str = "SRFUIIUXDFGRWGOTKWKA2EN26U5OUFZY2TNTEAA";

fn content(n: usize) -> Vec<u8> {
    let mut data = format!("file number {n}\n").into_bytes();
    data.resize((n * 53) % 2500 + data.len(), (n % 251) as u8);
    data
}

fn file_name(n: usize) -> String {
    let ext = if n % 10 == 0 { "mp3" } else { "bin" };
    format!("d{:02}/f{n:04}.{ext}", n % 12)
}

/// The shared folder: FILES numbered files and one `secret.txt`.
fn make_share(root: &Path) {
    for n in 0..FILES {
        let path = root.join(file_name(n));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content(n)).unwrap();
    }
    fs::write(root.join("secret.txt"), b"top secret").unwrap();
}

/// A worker with a Lua host and a share service; `print` output (the
/// watcher script's lines) goes to a channel.
struct Rig {
    worker: WorkerHandle,
    out: Receiver<String>,
}

const WATCHER: &str = r#"
dc.on("share_updated", function(e)
  print(string.format("updated hashed=%d files=%d removed=%d pending=%d list=%s",
    e.hashed, e.files, e.removed, e.pending, tostring(e.list)))
end)
dc.on("hash_progress", function(e)
  print(string.format("progress %d/%d %d/%d", e.files_done, e.files_total, e.bytes_done, e.bytes_total))
end)
"#;

impl Rig {
    fn start(data: &Path, share: &Path) -> Rig {
        let worker =
            Worker::start(WorkerConfig { helper_threads: Some(2), ..Default::default() }).unwrap();
        let (tx, rx) = channel::<String>();
        let tx = Arc::new(Mutex::new(tx));
        let handle = worker.clone();
        let opts = ShareOptions {
            data_dir: data.to_path_buf(),
            cid: CID.into(),
            folders: vec![SharedFolder {
                name: "Share".into(),
                path: share.into(),
                hidden: false,
                follow_symlinks: false,
            }],
        };
        worker
            .call(move |pool| {
                let client = Client::start(
                    pool,
                    ClientOptions {
                        downloads: None,
                        data_dir: opts.data_dir,
                        identity: Default::default(),
                        host: HostOptions::default(),
                        share: Some(ShareSetup {
                            worker: handle,
                            folders: opts.folders,
                            cid: Some(opts.cid),
                        }),
                    },
                );
                let host = client.host();
                host.set_hooks(HostHooks {
                    output: Some(Box::new(move |line| {
                        let _ = tx.lock().unwrap().send(line.to_string());
                    })),
                    ..Default::default()
                });
                host.load_source("watcher", None, WATCHER.as_bytes(), false, &[]).unwrap();
            })
            .unwrap();
        Rig { worker, out: rx }
    }

    /// Lines until the next `updated` line; returns (progress lines, the
    /// updated line's fields).
    fn next_update(&self) -> (Vec<String>, Update) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut progress = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.out.recv_timeout(left).expect("a share_updated event in time");
            if line.starts_with("progress ") {
                progress.push(line);
            } else if let Some(rest) = line.strip_prefix("updated ") {
                return (progress, Update::parse(rest));
            }
        }
    }

    fn eval(&self, chunk: &str) -> Result<String, String> {
        let (tx, rx) = channel();
        let chunk = chunk.to_string();
        self.worker
            .call(move |_| {
                Client::current().unwrap().host().eval_console(&chunk, move |o| {
                    let _ = tx.send(o);
                });
            })
            .unwrap();
        match rx.recv_timeout(Duration::from_secs(30)).expect("the chunk finished") {
            ChunkOutcome::Values(v) => Ok(v.join("\t")),
            ChunkOutcome::Error(e) => Err(e),
        }
    }

    fn service<R: Send + 'static>(&self, f: impl FnOnce(&ShareService) -> R + Send + 'static) -> R {
        self.worker
            .call(move |_| {
                f(&Client::current().and_then(|c| c.share().cloned()).expect("the share service"))
            })
            .unwrap()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.worker.shutdown_and_join();
    }
}

#[derive(Debug)]
struct Update {
    hashed: u64,
    files: u64,
    removed: u64,
    pending: u64,
    list: String,
}

impl Update {
    fn parse(s: &str) -> Update {
        let field = |k: &str| -> String {
            s.split(' ')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("no {k} in {s}"))
                .to_string()
        };
        let num = |k: &str| field(k).parse::<u64>().unwrap();
        Update {
            hashed: num("hashed"),
            files: num("files"),
            removed: num("removed"),
            pending: num("pending"),
            list: field("list"),
        }
    }
}

fn read_list(path: &Path) -> ListDir {
    let bytes = fs::read(path).unwrap();
    let listing = read_listing(&bytes[..], &ReadLimits::default()).unwrap();
    assert_eq!(listing.cid.as_deref(), Some(CID));
    listing.root
}

fn list_file<'a>(root: &'a ListDir, vpath: &str) -> Option<&'a dclua::share::filelist::ListFile> {
    let (dir, name) = vpath.rsplit_once('/').unwrap();
    root.find_dir(dir)?.files.iter().find(|f| &*f.name == name)
}

#[test]
fn a_share_is_hashed_searched_listed_and_kept_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    let data = tmp.path().join("data");
    make_share(&share);
    let total = FILES as u64 + 1;

    // ----- first start: everything is hashed ---------------------------------
    let rig = Rig::start(&data, &share);
    let (progress, up) = rig.next_update();
    assert_eq!((up.hashed, up.files, up.removed, up.pending), (total, total, 0, 0), "{up:?}");
    let list_path = data.join(LIST_FILE);
    assert_eq!(PathBuf::from(&up.list), list_path);
    let last = progress.last().expect("hash_progress events arrived");
    assert!(last.starts_with(&format!("progress {total}/{total} ")), "{progress:?}");
    assert!(progress.len() <= 4, "rate-limited progress: {progress:?}");

    // Searching from Lua: words, TTH, type, sizes.
    let n = 42;
    let vpath = format!("Share/{}", file_name(n));
    let tth = tree_root(&content(n)).to_base32();
    let found = rig
        .eval("local r = dc.share.find{text='f0042'} return #r, r[1].path, r[1].tth, r[1].size")
        .unwrap();
    assert_eq!(found, format!("1\t{vpath}\t{tth}\t{}", content(n).len()));
    let by_tth =
        rig.eval(&format!("local r = dc.share.find{{tth='{tth}'}} return #r, r[1].path")).unwrap();
    assert_eq!(by_tth, format!("1\t{vpath}"));
    let audio = rig.eval("return #dc.share.find{type='audio', max=1000}").unwrap();
    assert_eq!(audio, (FILES / 10).to_string());
    let big = (0..FILES).filter(|&n| content(n).len() >= 2000).count();
    assert_eq!(
        rig.eval("return #dc.share.find{min_size=2000, max=1000}").unwrap(),
        big.to_string()
    );
    assert!(rig.eval("return dc.share.find{colour='red'}").unwrap_err().contains("unknown key"));
    let stats = rig
        .eval("local s = dc.share.stats() return s.files, s.pending, s.hashed, #s.roots, s.roots[1].name")
        .unwrap();
    assert_eq!(stats, format!("{total}\t0\t{total}\t1\tShare"));

    // Answering others: the caller's limit, then the Lua filter.
    let words = |text: &str, max: usize| (Query::words(text), max);
    let q = words("f00", MAX_RESULTS_PASSIVE);
    let hits = rig.service(move |s| s.answer(&q.0, q.1));
    assert_eq!(hits.len(), MAX_RESULTS_PASSIVE);
    let q = words("f00", 1000);
    assert_eq!(
        rig.service(move |s| s.answer(&q.0, q.1)).len(),
        10,
        "at most 10 whatever the caller asks"
    );
    let q = (Query { file_type: FileType::Audio, ..Query::words("f00") }, 10);
    assert!(rig.service(move |s| s.answer(&q.0, q.1)).iter().all(|h| h.path.ends_with(".mp3")));
    assert_eq!(
        rig.service(|s| (s.shared_files(), s.file_list_path())),
        (total, Some(list_path.clone()))
    );
    let size: u64 = (0..FILES).map(|n| content(n).len() as u64).sum::<u64>() + 10;
    assert_eq!(rig.service(|s| s.share_size()), size);

    rig.eval(
        "dc.share.filter(function(q, hits)
           if q.text == 'secret' then return false end
           if q.text == 'f00' then return { hits[2].path } end
         end)",
    )
    .unwrap();
    let q = words("secret", 10);
    assert!(rig.service(move |s| s.answer(&q.0, q.1)).is_empty(), "vetoed by the filter");
    let q = words("secret", 10);
    assert_eq!(rig.service(move |s| s.find(&q.0, q.1)).len(), 1, "find does not filter");
    let q = words("f00", 10);
    let kept = rig.service(move |s| s.answer(&q.0, q.1));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].path, hits[1].path);
    let q = words("f0042", 10);
    assert_eq!(rig.service(move |s| s.answer(&q.0, q.1)).len(), 1, "nil from the filter keeps all");
    rig.eval("dc.share.filter(function() error('broken') end)").unwrap();
    let q = words("f0042", 10);
    assert!(rig.service(move |s| s.answer(&q.0, q.1)).is_empty(), "a failing filter fails closed");
    rig.eval("dc.share.filter(nil)").unwrap();
    let q = words("secret", 10);
    assert_eq!(rig.service(move |s| s.answer(&q.0, q.1)).len(), 1);

    // The list, read back; a partial list of one folder.
    let root = read_list(&list_path);
    assert_eq!(root.total_files(), total);
    let f = list_file(&root, &vpath).expect("the file is listed");
    assert_eq!(
        (f.size, f.tth.map(|t| t.to_base32())),
        (content(n).len() as u64, Some(tth.clone()))
    );
    let partial = rig.service(|s| s.partial_list("/Share/d06/", false)).unwrap();
    let listing = read_listing(&partial[..], &ReadLimits::default()).unwrap();
    assert_eq!(listing.base, "/Share/d06/");
    assert_eq!(listing.root.files.len(), (0..FILES).filter(|n| n % 12 == 6).count());
    let real = rig.service(move |s| s.real_path("/Share/d06/f0006.bin")).unwrap();
    assert_eq!(fs::read(real).unwrap(), content(6));

    // dc.tth against rhash; errors raise.
    let file = share.join(file_name(77));
    let ours = rig.eval(&format!("return dc.tth({:?})", file.display().to_string())).unwrap();
    let rhash = Command::new("rhash").arg("--tth").arg("--simple").arg(&file).output().unwrap();
    assert!(rhash.status.success());
    let theirs = String::from_utf8(rhash.stdout).unwrap();
    let theirs = theirs.split_whitespace().next().unwrap();
    assert!(ours.eq_ignore_ascii_case(theirs), "dc.tth {ours} vs rhash {theirs}");
    let err = rig.eval("return dc.tth('/nonexistent/dclua-test-file')").unwrap_err();
    assert!(err.contains("cannot open"), "{err}");

    // Adding and removing a folder at run time.
    let extra = tmp.path().join("extra");
    fs::create_dir_all(&extra).unwrap();
    for i in 0..3 {
        fs::write(extra.join(format!("extra{i}.txt")), format!("extra {i}")).unwrap();
    }
    let added =
        rig.eval(&format!("return dc.share.add({:?}, 'Extra')", extra.display().to_string()));
    assert_eq!(added.unwrap(), "true");
    let (_, up) = rig.next_update();
    assert_eq!((up.hashed, up.files), (3, total + 3), "{up:?}");
    let taken =
        rig.eval(&format!("return dc.share.add({:?}, 'extra')", extra.display().to_string()));
    assert!(taken.unwrap_err().contains("already used"));
    let missing = rig.eval("return dc.share.add('/nonexistent/dclua-folder', 'Nope')");
    assert!(missing.unwrap_err().contains("/nonexistent/dclua-folder"));
    assert_eq!(
        rig.eval("return dc.share.remove('Extra'), #dc.share.find{text='extra1'}").unwrap(),
        "true\t0"
    );
    let (_, up) = rig.next_update();
    assert_eq!((up.hashed, up.files, up.removed), (0, total, 3), "{up:?}");
    drop(rig);

    // ----- restart: nothing is hashed again ------------------------------------
    let rig = Rig::start(&data, &share);
    let (progress, up) = rig.next_update();
    assert_eq!((up.hashed, up.files), (0, total), "{up:?}");
    assert!(progress.is_empty(), "nothing to hash, no progress: {progress:?}");
    let found = rig.eval("local r = dc.share.find{text='f0042'} return #r, r[1].tth").unwrap();
    assert_eq!(found, format!("1\t{tth}"));

    // One file changed: only it is hashed again.
    let touched = share.join(file_name(5));
    let mut new = content(5);
    new.extend_from_slice(b"appended");
    fs::write(&touched, &new).unwrap();
    rig.eval("dc.share.rescan()").unwrap();
    let (_, up) = rig.next_update();
    assert_eq!((up.hashed, up.files, up.removed), (1, total, 0), "{up:?}");
    let root = read_list(&list_path);
    let f = list_file(&root, &format!("Share/{}", file_name(5))).unwrap();
    assert_eq!(f.tth, Some(tree_root(&new)));

    // One file deleted: gone from the index and the list.
    fs::remove_file(share.join(file_name(n))).unwrap();
    rig.eval("dc.share.rescan()").unwrap();
    let (_, up) = rig.next_update();
    assert_eq!((up.hashed, up.files, up.removed), (0, total - 1, 1), "{up:?}");
    assert!(list_file(&read_list(&list_path), &vpath).is_none());
    assert_eq!(rig.eval("return #dc.share.find{text='f0042'}").unwrap(), "0");
}

#[test]
fn dclua_hash_prints_in_argument_order_whatever_finishes_first() {
    let tmp = tempfile::tempdir().unwrap();
    // A large file first, so that the small ones behind it finish earlier.
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![(tmp.path().join("big"), vec![7u8; 24 << 20])];
    for n in 0..12 {
        files.push((tmp.path().join(format!("small{n}")), content(n * 31)));
    }
    let missing = tmp.path().join("missing");
    for (p, data) in &files {
        fs::write(p, data).unwrap();
    }
    let mut args: Vec<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    args.insert(3, &missing);
    args.push(files[2].0.as_path()); // named twice: printed twice
    let out = Command::new(env!("CARGO_BIN_EXE_dclua")).arg("hash").args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a missing file fails the command");
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    let expected: String = args
        .iter()
        .filter(|p| **p != missing)
        .map(|p| {
            let data = &files.iter().find(|(q, _)| q == p).unwrap().1;
            format!("{}  {}\n", tree_root(data), p.display())
        })
        .collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}
