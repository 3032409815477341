//! The composition root: every service of one running client, built once
//! on the worker thread in one order and passed on explicitly.
//!
//! `app.rs` and the tests both build a client here, so the start-up order
//! (identity and data folder for the hubs, the Lua host, the share before
//! the scripts that use it, hubs following the share) is written once.
//! Services are `Rc` handles that live on the worker thread; code running
//! there receives them as arguments. The one look-up left is
//! [`Client::current`], for closures that other threads (the console, the
//! signal thread, tests) post to the worker: they cannot carry an `Rc`
//! across threads, so they find the worker's client when they run.
//!
//! This module wires services together; it implements none of them and
//! knows no protocol.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::download::{DownloadOptions, Downloads, MAX_CONNECTIONS};
use crate::hub::{self, Hubs, Identity};
use crate::identity::Me;
use crate::lua::{share_api, HostOptions, LuaHost};
use crate::peer::{PeerOptions, Peers};
use crate::runtime::{JobPool, Runtime, WorkerHandle};
use crate::share::service::{ShareOptions, ShareService, SharedFolder};

/// What one client is built from.
pub struct ClientOptions {
    /// The data folder: our PID and certificate, the hash store, the queue.
    pub data_dir: PathBuf,
    /// Who we are on hubs (nick, description, slots, mode...).
    pub identity: Identity,
    /// The Lua host's limits.
    pub host: HostOptions,
    /// The share, when sharing runs (the client and most tests; not the
    /// tests of the Lua API alone).
    pub share: Option<ShareSetup>,
    /// Downloads; `None`: the defaults, into `<data_dir>/downloads`.
    pub downloads: Option<DownloadOptions>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("data_dir", &self.data_dir)
            .field("nick", &self.identity.nick)
            .field("share", &self.share.as_ref().map(|s| s.folders.len()))
            .finish_non_exhaustive()
    }
}

/// How the share is started.
#[derive(Debug, Clone)]
pub struct ShareSetup {
    /// The worker, for the share's helper-thread results.
    pub worker: WorkerHandle,
    /// The folders shared at start.
    pub folders: Vec<SharedFolder>,
    /// Our CID as the file list names it; `None`: the identity's own.
    pub cid: Option<String>,
}

struct Inner {
    runtime: Runtime,
    me: Me,
    hubs: Hubs,
    host: LuaHost,
    share: Option<ShareService>,
    peers: Peers,
    downloads: Downloads,
}

/// The running client's services; a cheap handle, on the worker thread only.
#[derive(Clone)]
pub struct Client {
    inner: std::rc::Rc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("share", &self.inner.share.is_some()).finish_non_exhaustive()
    }
}

thread_local! {
    /// The client of this worker thread, for closures posted from other
    /// threads (see the module documentation). Set by [`Client::start`].
    static CURRENT: RefCell<Option<Client>> = const { RefCell::new(None) };
}

impl Client {
    /// Builds every service on the worker thread of `pool`, in order, and
    /// makes the result the worker's [`Client::current`].
    pub fn start(pool: &JobPool, opts: ClientOptions) -> Client {
        let rt = pool.runtime();
        // Our keys, once: every hub, the file list and the peers use them.
        let me = Me::load(Some(&opts.data_dir));
        let hubs = Hubs::new();
        hubs.set_me(me.clone());
        let peer_opts = PeerOptions::from_identity(&opts.identity);
        hubs.set_identity(rt, opts.identity);
        let host = LuaHost::with_hubs(rt, opts.host, hubs.clone());
        // The share starts before any script, so that scripts find it.
        let share = opts.share.map(|setup| {
            let cid = setup.cid.unwrap_or_else(|| me.cid().to_base32());
            let share = ShareService::start(
                rt,
                setup.worker,
                ShareOptions { data_dir: opts.data_dir.clone(), cid, folders: setup.folders },
            );
            share_api::install(&host, &share);
            // Hubs announce the share's size and answer from it.
            hub::follow_share(rt, &hubs, &share);
            share
        });
        // Peers serve from the share and take the hubs' connection requests.
        let peers = Peers::start(rt, &hubs, me.clone(), peer_opts);
        peers.set_share(share.clone());
        crate::lua::peer_api::install(&host, &peers);
        // Downloads ride on the peer layer and keep their queue beside the
        // hash store.
        let dl_opts = opts.downloads.unwrap_or_else(|| DownloadOptions {
            dir: opts.data_dir.join(crate::config::paths::DOWNLOADS_DIR_NAME),
            ..DownloadOptions::default()
        });
        let downloads = Downloads::start(rt, &hubs, &peers, Some(&opts.data_dir), dl_opts);
        crate::lua::download_api::install(&host, &downloads);
        let client = Client {
            inner: std::rc::Rc::new(Inner {
                runtime: rt.clone(),
                me,
                hubs,
                host,
                share,
                peers,
                downloads,
            }),
        };
        CURRENT.with(|c| *c.borrow_mut() = Some(client.clone()));
        client
    }

    /// The client of this worker thread, once started (`None` elsewhere,
    /// and after [`Client::stop`]).
    pub fn current() -> Option<Client> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Runs `f` with the worker's client; an error text when there is none
    /// (the client stopped, or this is not the worker thread).
    pub fn with<R>(f: impl FnOnce(&Client) -> R) -> Result<R, &'static str> {
        Client::current().map(|c| f(&c)).ok_or("the client is not running")
    }

    /// Forgets the worker's client (its services end as their jobs stop).
    pub fn stop() {
        CURRENT.with(|c| c.borrow_mut().take());
    }

    /// The pool's runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Our keys (PID, CID, certificate).
    pub fn me(&self) -> &Me {
        &self.inner.me
    }

    /// The hub registry.
    pub fn hubs(&self) -> &Hubs {
        &self.inner.hubs
    }

    /// The Lua host.
    pub fn host(&self) -> &LuaHost {
        &self.inner.host
    }

    /// The share, when sharing runs.
    pub fn share(&self) -> Option<&ShareService> {
        self.inner.share.as_ref()
    }

    /// Client-client connections and uploads.
    pub fn peers(&self) -> &Peers {
        &self.inner.peers
    }

    /// The download queue and file lists.
    pub fn downloads(&self) -> &Downloads {
        &self.inner.downloads
    }
}

// The adapter from the configuration lives here, in the composition root,
// so that `download` does not import `config` (a layer above it). It stays
// an associated function of `DownloadOptions` so its callers read as before.
impl DownloadOptions {
    /// The options of a configuration whose data folder is `data_dir`.
    pub fn from_config(config: &Config, data_dir: &Path) -> DownloadOptions {
        DownloadOptions {
            dir: crate::config::paths::download_dir(config, data_dir),
            max_connections: match config.download_slots {
                0 => MAX_CONNECTIONS,
                n => n as usize,
            },
            limit: u64::from(config.download_limit) * 1024,
            min_segment: u64::from(config.segment_size.max(1)) << 20,
        }
    }
}
