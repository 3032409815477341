//! Shares stay inside their roots (issue 10; issue 15, finding 3), with real
//! folders: symbolic links are not followed unless the share says so, the
//! data folder is never shared, and a file is served only when it resolves
//! inside its share (or through links its share follows) unchanged since it
//! was hashed — through `scan::open_served` and `ShareService::resolve`.
#![cfg(unix)]

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use dclua::client::{Client, ClientOptions, ShareSetup};
use dclua::runtime::{Worker, WorkerConfig};
use dclua::share::hasher::hash_file;
use dclua::share::scan::{open_served, scan, Hashed, ScanOptions, ServeRefusal, ShareRoot};
use dclua::share::service::{ServeRequest, ShareOptions, SharedFolder};

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("creating folders");
    fs::write(path, data).expect("writing a file");
}

fn vpaths(roots: &[ShareRoot], options: &ScanOptions) -> Vec<String> {
    let mut v: Vec<String> = scan(roots, options)
        .expect("a valid share")
        .files
        .into_iter()
        .map(|f| f.virtual_path)
        .collect();
    v.sort();
    v
}

/// What the share would have recorded when hashing `path`.
fn hashed(path: &Path) -> Hashed {
    let meta = fs::metadata(path).expect("metadata");
    let mtime =
        meta.modified().expect("mtime").duration_since(SystemTime::UNIX_EPOCH).expect("after 1970");
    Hashed { size: meta.len(), mtime_secs: mtime.as_secs() }
}

#[test]
fn a_link_to_etc_is_not_shared_unless_the_share_follows_links() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let share = dir.path().join("share");
    let outside = dir.path().join("outside");
    write(&share.join("a.txt"), b"a");
    write(&share.join("sub/b.txt"), b"b");
    write(&outside.join("o.txt"), b"o");
    symlink("/etc", share.join("etc")).expect("a link to /etc");
    symlink(&outside, share.join("linked")).expect("a link out");
    symlink(share.join("sub/b.txt"), share.join("alias.txt")).expect("a link inside");

    let result =
        scan(&[ShareRoot::new("S", &share)], &ScanOptions::default()).expect("a valid share");
    let mut files: Vec<&str> = result.files.iter().map(|f| f.virtual_path.as_str()).collect();
    files.sort_unstable();
    assert_eq!(files, ["S/a.txt", "S/sub/b.txt"]);
    assert_eq!(result.links_skipped, 3);
    assert!(result.files.iter().all(|f| !f.fs_path.starts_with("/etc")));

    // Following links is the share's own choice, and may leave the root.
    let follow = ShareRoot { follow_symlinks: true, ..ShareRoot::new("S", &share) };
    let mut files = vpaths(&[follow], &ScanOptions::default());
    files.retain(|f| !f.starts_with("S/etc/"));
    assert_eq!(files, ["S/a.txt", "S/alias.txt", "S/linked/o.txt", "S/sub/b.txt"]);
}

#[test]
fn the_data_folder_is_never_shared() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let share = dir.path().join("share");
    let data = share.join("data");
    write(&share.join("a.txt"), b"a");
    write(&data.join("hashes.sqlite"), b"db");
    write(&data.join("downloads/x.bin"), b"x");
    let elsewhere = dir.path().join("elsewhere-data");
    write(&elsewhere.join("secret"), b"s");
    symlink(&elsewhere, share.join("to-data")).expect("a link");
    symlink(elsewhere.join("secret"), share.join("secret-link")).expect("a link");

    // The data folder inside a share.
    let options = ScanOptions { exclude: vec![data.clone()], ..ScanOptions::default() };
    assert_eq!(vpaths(&[ShareRoot::new("S", &share)], &options), ["S/a.txt"]);

    // Reached through followed links, wherever it is.
    let follow = ShareRoot { follow_symlinks: true, ..ShareRoot::new("S", &share) };
    let options =
        ScanOptions { exclude: vec![data.clone(), elsewhere.clone()], ..ScanOptions::default() };
    let result = scan(std::slice::from_ref(&follow), &options).expect("a valid share");
    let files: Vec<&str> = result.files.iter().map(|f| f.virtual_path.as_str()).collect();
    assert_eq!(files, ["S/a.txt"]);
    assert_eq!(result.problems.len(), 2, "{:?}", result.problems);

    // A root that is the data folder, or inside it.
    let result =
        scan(&[ShareRoot::new("D", data.join("downloads"))], &options).expect("a valid share");
    assert!(result.files.is_empty());
    assert_eq!(result.problems.len(), 1);
}

#[test]
fn open_served_checks_the_path_the_links_and_the_file() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let share = dir.path().join("share");
    let data = dir.path().join("data");
    let outside = dir.path().join("outside");
    write(&share.join("dir/f.txt"), b"the file");
    write(&share.join("g.txt"), b"gg");
    write(&outside.join("o.txt"), b"out");
    write(&data.join("hashes.sqlite"), b"db");
    symlink("/etc", share.join("etc")).expect("a link to /etc");
    symlink(&outside, share.join("out")).expect("a link out");
    symlink(share.join("g.txt"), share.join("alias.txt")).expect("a link inside");
    symlink(&data, share.join("data")).expect("a link to the data folder");
    let root = ShareRoot::new("S", &share);
    let follow = ShareRoot { follow_symlinks: true, ..root.clone() };
    let exclude = [data.clone()];
    let f = hashed(&share.join("dir/f.txt"));

    let served = open_served(&root, "dir/f.txt", &exclude, f, "S/dir/f.txt").expect("served");
    assert_eq!(served.path, fs::canonicalize(share.join("dir/f.txt")).expect("canonical"));
    assert_eq!(served.size, 8);
    let mut text = String::new();
    (&served.file).read_to_string(&mut text).expect("reading the served file");
    assert_eq!(text, "the file");

    let refused = |root: &ShareRoot, rel: &str, h: Hashed| {
        open_served(root, rel, &exclude, h, rel).map(|s| s.path).expect_err(rel)
    };
    // Paths that leave the share by themselves.
    for rel in
        ["../outside/o.txt", "dir/../../outside/o.txt", "/etc/passwd", "dir//f.txt", "./g.txt", ""]
    {
        assert_eq!(refused(&follow, rel, f), ServeRefusal::OutsideShare(rel.into()), "{rel}");
    }
    // Links: out of the share, inside it, into the data folder.
    if Path::new("/etc/passwd").exists() {
        let h = hashed(Path::new("/etc/passwd"));
        assert_eq!(
            refused(&root, "etc/passwd", h),
            ServeRefusal::SymlinkOutOfShare("etc/passwd".into())
        );
    }
    let o = hashed(&outside.join("o.txt"));
    assert_eq!(refused(&root, "out/o.txt", o), ServeRefusal::SymlinkOutOfShare("out/o.txt".into()));
    assert!(open_served(&follow, "out/o.txt", &exclude, o, "S/out/o.txt").is_ok());
    let g = hashed(&share.join("g.txt"));
    assert_eq!(refused(&root, "alias.txt", g), ServeRefusal::Symlink("alias.txt".into()));
    assert!(open_served(&follow, "alias.txt", &exclude, g, "S/alias.txt").is_ok());
    let db = hashed(&data.join("hashes.sqlite"));
    assert_eq!(
        refused(&follow, "data/hashes.sqlite", db),
        ServeRefusal::DataFolder("data/hashes.sqlite".into())
    );
    // Missing, a folder.
    assert_eq!(refused(&root, "dir/none.txt", f), ServeRefusal::NotFound("dir/none.txt".into()));
    assert_eq!(refused(&root, "dir", f), ServeRefusal::NotFound("dir".into()));

    // Changed after hashing: the size, or only the time.
    fs::write(share.join("g.txt"), b"ggg").expect("rewriting");
    assert_eq!(refused(&root, "g.txt", g), ServeRefusal::Changed("g.txt".into()));
    let file = fs::File::options().write(true).open(share.join("dir/f.txt")).expect("opening");
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .expect("setting the time");
    assert_eq!(refused(&root, "dir/f.txt", f), ServeRefusal::Changed("dir/f.txt".into()));

    // A folder replaced by a link after hashing, the file still the same.
    write(&outside.join("moved/f.txt"), b"the file");
    let f2 = hashed(&share.join("dir/f.txt"));
    fs::rename(share.join("dir"), dir.path().join("old-dir")).expect("moving the folder away");
    symlink(outside.join("moved"), share.join("dir")).expect("the folder becomes a link");
    let moved = fs::File::options().write(true).open(outside.join("moved/f.txt")).expect("opening");
    moved
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .expect("setting the time");
    assert_eq!(
        refused(&root, "dir/f.txt", f2),
        ServeRefusal::SymlinkOutOfShare("dir/f.txt".into())
    );
}

#[test]
fn the_service_resolves_only_hashed_files_inside_the_share() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let share = dir.path().join("share");
    let data = share.join(".dclua");
    write(&share.join("a.txt"), b"alpha");
    write(&share.join("sub/b.txt"), b"beta");
    symlink("/etc", share.join("etc")).expect("a link to /etc");
    fs::create_dir_all(&data).expect("the data folder");
    let tth_a = hash_file(&share.join("a.txt")).expect("hashing a.txt").tree.root;

    let worker = Worker::start(WorkerConfig { helper_threads: Some(2), ..Default::default() })
        .expect("a worker");
    let handle = worker.clone();
    let opts = ShareOptions {
        data_dir: data.clone(),
        cid: "SRFUIIUXDFGRWGOTKWKA2EN26U5OUFZY2TNTEAA".into(),
        // Hidden files shared, so that only the data-folder rule keeps
        // `.dclua` out.
        folders: vec![SharedFolder {
            name: "Share".into(),
            path: share.clone(),
            hidden: true,
            follow_symlinks: false,
        }],
    };
    worker
        .call(move |pool| {
            // The client's share lives on in its job; `current()` finds it.
            let _ = Client::start(
                pool,
                ClientOptions {
                    downloads: None,
                    data_dir: opts.data_dir,
                    identity: Default::default(),
                    host: Default::default(),
                    share: Some(ShareSetup {
                        worker: handle,
                        folders: opts.folders,
                        cid: Some(opts.cid),
                    }),
                },
            );
        })
        .expect("starting the service");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = worker
            .call(|_| {
                Client::current().and_then(|c| c.share().cloned()).expect("the service").stats()
            })
            .expect("the stats");
        if stats.files == 2 && !stats.hashing {
            break;
        }
        assert!(Instant::now() < deadline, "the share was not hashed in time: {stats:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    type Outcome = Result<PathBuf, ServeRefusal>;
    let resolve = |request: String| -> Outcome {
        worker
            .call(move |_| {
                let service =
                    Client::current().and_then(|c| c.share().cloned()).expect("the service");
                let req = match request.strip_prefix("TTH/") {
                    Some(t) => ServeRequest::Tth(t.parse().expect("a TTH")),
                    None => ServeRequest::Path(&request),
                };
                service.resolve(req).map(|s| s.path)
            })
            .expect("resolving")
    };
    let a = fs::canonicalize(share.join("a.txt")).expect("canonical");
    assert_eq!(resolve("Share/a.txt".into()), Ok(a.clone()));
    assert_eq!(resolve("/Share/a.txt".into()), Ok(a.clone()));
    assert_eq!(resolve("share/A.TXT".into()), Ok(a.clone()));
    assert_eq!(resolve(format!("TTH/{tth_a}")), Ok(a));
    assert!(resolve("Share/sub/b.txt".into()).is_ok());
    for (request, want) in [
        ("Share/etc/passwd", ServeRefusal::NotFound("Share/etc/passwd".into())),
        ("Share/etc/shadow", ServeRefusal::NotFound("Share/etc/shadow".into())),
        ("Share/../../etc/passwd", ServeRefusal::OutsideShare("Share/../../etc/passwd".into())),
        ("/etc/passwd", ServeRefusal::NotFound("etc/passwd".into())),
        ("Share/.dclua/hashes.sqlite", ServeRefusal::NotFound("Share/.dclua/hashes.sqlite".into())),
        ("Share/sub", ServeRefusal::NotFound("Share/sub".into())),
    ] {
        assert_eq!(resolve(request.into()), Err(want), "{request}");
    }
    // Changed after hashing: refused until the share hashes it again.
    fs::write(share.join("a.txt"), b"alpha, longer").expect("rewriting");
    assert_eq!(resolve("Share/a.txt".into()), Err(ServeRefusal::Changed("Share/a.txt".into())));
    let _ = worker.shutdown_and_join();
}
