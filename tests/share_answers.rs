//! dclua answers searches from its share on real hubs, and announces the
//! share's size: eiskaltdcpp on the NMDC hub (verlihub-py) and on uhub
//! searches dclua's temporary share by name and by TTH and gets the right
//! name, path, size and TTH; a file hidden by a Lua answer filter is not
//! answered; eiskaltdcpp's user list shows dclua's share size.
//!
//! Both transports on both hubs: an active eiskaltdcpp gets UDP results
//! (from dclua's shared listener when dclua is active, from a send-only
//! socket when it is passive), a passive one gets them through the hub.
//!
//! Each dclua is a worker thread with a Lua host, a share service (a
//! temporary share and data folder) and the hub registry, wired as
//! `dclua` itself wires them. Everything talks to 127.0.0.1 only; every wait
//! is bounded. `tests/setup-peers.sh` must have run.

mod support;

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use dclua::client::{Client, ClientOptions, ShareSetup};
use dclua::hub::{self, ConnectMode, HubId, HubParams, HubState, Identity, NullSink};
use dclua::lua::HostOptions;
use dclua::proto::tth::tree_root;
use dclua::runtime::{Worker, WorkerConfig, WorkerHandle};
use dclua::share::service::{ShareOptions, SharedFolder};
use support::{
    Eiskalt, EiskaltOptions, NmdcHub, NmdcHubOptions, SearchResult, SearchType, SearchWait, Uhub,
    UhubOptions,
};

const NICK: &str = "sharer";
const CID: &str = "SRFUIIUXDFGRWGOTKWKA2EN26U5OUFZY2TNTEAA";

/// The song: the file of known content searched for.
fn song() -> Vec<u8> {
    (0..150_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Hides every hit whose path names a secret.
const FILTER: &str = r#"
dc.share.filter(function(query, hits)
  local keep = {}
  for _, h in ipairs(hits) do
    if not h.path:find("secret") then keep[#keep + 1] = h end
  end
  return keep
end)
"#;

/// The share: the song, a note, and a secret the filter hides. Returns the
/// share's size in bytes.
fn make_share(root: &Path) -> Result<u64> {
    let files: [(&str, Vec<u8>); 3] = [
        ("music/Beatles - Help.mp3", song()),
        ("docs/notes.txt", b"nothing to see here\n".to_vec()),
        ("docs/secret beatles plans.txt", vec![b's'; 4321]),
    ];
    let mut size = 0;
    for (name, data) in files {
        let path = root.join(name);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(&path, &data)?;
        size += data.len() as u64;
    }
    Ok(size)
}

/// One dclua: worker, Lua host with the filter, share service, hubs.
struct Dclua {
    worker: WorkerHandle,
    _data: tempfile::TempDir,
    _share: tempfile::TempDir,
    /// Bytes in the share.
    size: u64,
}

impl Dclua {
    /// Starts one sharing a fresh folder, in `mode`, and waits until the
    /// share is hashed and our identity announces its size.
    fn start(mode: ConnectMode) -> Result<Dclua> {
        let data = support::component_dir("dclua-data")?;
        let share = support::component_dir("dclua-share")?;
        let size = make_share(share.path())?;
        let worker = Worker::start(WorkerConfig {
            helper_threads: Some(1),
            shutdown_grace: Duration::from_secs(3),
            ..Default::default()
        })?;
        let handle = worker.clone();
        let opts = ShareOptions {
            data_dir: data.path().to_path_buf(),
            cid: CID.into(),
            folders: vec![SharedFolder {
                name: "Share".into(),
                path: share.path().to_path_buf(),
                hidden: false,
                follow_symlinks: false,
            }],
        };
        let identity = Identity {
            nick: NICK.into(),
            description: "dclua sharing".into(),
            slots: 3,
            mode,
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ..Identity::default()
        };
        let loaded = worker.call(move |pool| -> Result<(), String> {
            let client = Client::start(
                pool,
                ClientOptions {
                    downloads: None,
                    data_dir: opts.data_dir,
                    identity,
                    host: HostOptions::default(),
                    share: Some(ShareSetup {
                        worker: handle,
                        folders: opts.folders,
                        cid: Some(opts.cid),
                    }),
                },
            );
            client
                .host()
                .load_source("filter", None, FILTER.as_bytes(), false, &[])
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
        if let Err(e) = loaded {
            bail!("loading the filter script: {e}");
        }
        let d = Dclua { worker, _data: data, _share: share, size };
        // The identity starts with an empty share: only the share service's
        // update event brings the size.
        d.wait("the share hashed and announced", Duration::from_secs(60), move || {
            let id = Client::current().expect("the client").hubs().identity();
            (id.share_size == size && id.shared_files == 3).then_some(())
        })?;
        Ok(d)
    }

    /// Polls `probe` on the worker every 50 ms until it gives a value.
    fn wait<T: Send + 'static>(
        &self,
        what: &str,
        timeout: Duration,
        probe: impl Fn() -> Option<T> + Send + Clone + 'static,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let p = probe.clone();
            if let Some(v) = self.worker.call(move |_| p())? {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Connects to `url` and waits until the hub session is online.
    fn connect(&self, url: &str) -> Result<HubId> {
        let params = HubParams::new(url, NICK);
        let id = self.worker.call(move |pool| {
            let client = Client::current().expect("the client");
            hub::connect(pool.runtime(), client.hubs(), params, Rc::new(NullSink))
        })??;
        self.wait("the hub session online", Duration::from_secs(20), move || {
            let info = Client::current().expect("the client").hubs().get(id)?;
            let online = info.borrow().state == HubState::Online;
            online.then_some(())
        })?;
        Ok(id)
    }
}

impl Drop for Dclua {
    fn drop(&mut self) {
        let _ = self.worker.shutdown_and_join();
    }
}

/// eiskaltdcpp's results from dclua for `query` (waits up to 5 s for one).
fn search(eisk: &Eiskalt, url: &str, query: &str, kind: SearchType) -> Result<Vec<SearchResult>> {
    let wait = SearchWait { max: Duration::from_secs(5), ..SearchWait::default() };
    let all = eisk.search_with(Some(url), query, kind, wait)?;
    Ok(all.into_iter().filter(|r| r.nick == NICK).collect())
}

/// eiskaltdcpp searching `url` finds the song by name and by TTH, with the
/// right path, size and TTH, and never the filtered secret.
fn check_answers(eisk: &Eiskalt, url: &str) -> Result<()> {
    let data = song();
    let tth = tree_root(&data).to_string();
    let check = |how: &str, got: &[SearchResult]| -> Result<()> {
        ensure!(got.len() == 1, "{how}: want the song alone from {NICK}, got {got:#?}");
        let r = &got[0];
        ensure!(r.filename == "Beatles - Help.mp3", "{how}: file name {:?}", r.filename);
        ensure!(
            r.path.trim_end_matches('/') == "Share/music",
            "{how}: path {:?}, want Share/music/",
            r.path
        );
        ensure!(r.size == data.len() as u64, "{how}: size {}", r.size);
        ensure!(r.tth.as_deref() == Some(tth.as_str()), "{how}: TTH {:?}, want {tth}", r.tth);
        ensure!(!r.is_dir, "{how}: a folder");
        ensure!(r.free_slots == 3, "{how}: free slots {}", r.free_slots);
        Ok(())
    };
    // "beatles" also matches the secret, which the Lua filter hides.
    check("by name", &search(eisk, url, "beatles help", SearchType::Any)?)?;
    check("by name, one word", &search(eisk, url, "beatles", SearchType::Any)?)?;
    check("by TTH", &search(eisk, url, &tth, SearchType::Tth)?)?;
    let secret = search(eisk, url, "secret", SearchType::Any)?;
    ensure!(secret.is_empty(), "the filter let a secret through: {secret:#?}");
    Ok(())
}

/// eiskaltdcpp (`eisk_passive` or active) and dclua (`mode`) on the hub
/// `url` (`adc`: an ADC hub): eiskaltdcpp sees dclua's share size (and on
/// ADC our INF carries the file count), and gets its answers.
fn answers_on(url: &str, adc: bool, eisk_passive: bool, mode: ConnectMode) -> Result<()> {
    let eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        hubs: vec![url.to_string()],
        passive: eisk_passive,
        ..EiskaltOptions::default()
    })?;
    let dclua = Dclua::start(mode)?;
    let id = dclua.connect(url)?;

    let seen = eisk.wait_user(url, NICK)?;
    ensure!(seen.share == dclua.size, "share as eiskaltdcpp sees it: {}", seen.share);
    let m = if mode == ConnectMode::Passive { "M:P" } else { "M:A" };
    ensure!(seen.tag.contains(m), "dclua's tag as eiskaltdcpp sees it: {:?}, want {m}", seen.tag);
    if adc {
        // eiskaltdcpp does not show SF: our INF as the hub echoed it does.
        let inf = dclua.wait("our INF echoed", Duration::from_secs(10), move || {
            let info = Client::current().expect("the client").hubs().get(id)?;
            let raw = info.borrow().users.get(NICK)?.raw();
            Some(raw)
        })?;
        ensure!(inf.split(' ').any(|f| f == "SF3"), "shared files (SF) in our INF: {inf}");
    }
    check_answers(&eisk, url)
}

/// Active dclua, active eiskaltdcpp: `$SR`s by UDP from the shared listener.
#[test]
fn nmdc_active_searcher_gets_udp_results_from_the_listener() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    answers_on(&hub.url(), false, false, ConnectMode::Active)
}

/// Active dclua, passive eiskaltdcpp: `$SR`s through the hub.
#[test]
fn nmdc_passive_searcher_gets_results_through_the_hub() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    answers_on(&hub.url(), false, true, ConnectMode::Active)
}

/// Active dclua (a passive searcher's `FSCH` goes to active users only),
/// passive eiskaltdcpp: `DRES` through the hub.
#[test]
fn adc_passive_searcher_gets_results_through_the_hub() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    answers_on(&hub.url(), true, true, ConnectMode::Active)
}

/// Passive dclua (no listener), active eiskaltdcpp: `URES` by UDP from the
/// send-only socket.
#[test]
fn adc_active_searcher_gets_udp_results_from_a_passive_dclua() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    answers_on(&hub.url(), true, false, ConnectMode::Passive)
}
