//! A real DC client for tests: EiskaltDC++ (`eiskaltdcpp-daemon` 2.4.2, Debian; the DC++
//! core lineage, NMDC and ADC), driven over its JSON-RPC interface on 127.0.0.1.
//!
//! Each [`Eiskalt`] runs `eiskaltdcpp-daemon -d` with its own config directory, into which
//! `DCPlusPlus.xml` is written before the first start: everything on 127.0.0.1 (bind
//! address, advertised IP, JSON-RPC listener), DHT, UPnP, DynDNS, IP auto-detection and
//! hub lists off (the defaults would reach the internet), active mode unless asked
//! otherwise, hashing without the 60 s start delay, a random private ID (the daemon seeds
//! its own from the clock, so two peers started in the same second would share a CID), and
//! logs (protocol trace, PMs, hub status messages) in files this module reads back.
//! Passwords for registered nicks go into `Favorites.xml`, where the daemon looks them up
//! when a hub asks.
//!
//! Quirks of the daemon this module works around: `hub.getusers` with an unknown hub URL
//! leaves a null entry behind that makes a later `hub.listfulldesc` crash the daemon (so
//! the helpers check `hub.list` first, and nothing calls `hub.listfulldesc` after
//! `hub.del`); `hub.getchat` consumes what it returns (so chat is accumulated here);
//! `search.clear` without a URL clears only the first hub; `queue.add` adds an item without
//! a source (a TTH search attaches them); `list.open` loads asynchronously; the daemon
//! segfaults on shutdown (harmless; core dumps are disabled for it).
//!
//! This module must not let the daemon bind or advertise anything but 127.0.0.1, nor leave
//! it running after drop.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use super::jsonrpc::JsonRpc;
use super::ports::{free_port, Port};
use super::process::{log_stdio, pids_with_marker, Daemon};
use super::{component_dir, find_binary, log_excerpt, release_dir, tail, wait_until};

const DAEMON: &str = "eiskaltdcpp-daemon";
/// Separator asked of `hub.getchat`: chat messages may contain newlines, this cannot.
const CHAT_SEPARATOR: &str = "\u{1e}";
/// Default bound on waits for hubs, chat, transfers.
const WAIT: Duration = Duration::from_secs(10);

/// How a test wants its EiskaltDC++ peer configured.
#[derive(Debug, Clone)]
pub struct EiskaltOptions {
    /// The nick on every hub (uhub refuses nicks shorter than 3 characters).
    pub nick: String,
    /// A folder to share; hashed completely before any hub is joined.
    pub share: Option<PathBuf>,
    /// Hub URLs (`adc://`, `adcs://`, `dchub://`) to join at start; [`Eiskalt::start`]
    /// returns once the peer sees itself in each hub's user list.
    pub hubs: Vec<String>,
    /// Passwords for registered nicks: (hub URL exactly as in `hubs`, password).
    pub passwords: Vec<(String, String)>,
    /// The description in the peer's INF / MyINFO.
    pub description: String,
    /// Passive mode (no incoming connections) instead of active.
    pub passive: bool,
    /// TLS for client-client connections (ADCS); needs the peer's own certificate, which
    /// the daemon generates.
    pub tls: bool,
    /// Allow compressed transfers (ZLIG / ZPipe).
    pub compress: bool,
    /// Upload slots.
    pub slots: u32,
    /// Extra `DCPlusPlus.xml` settings (name, value), written after (and winning over) the
    /// harness's own.
    pub settings: Vec<(String, String)>,
}

impl Default for EiskaltOptions {
    fn default() -> Self {
        EiskaltOptions {
            nick: "eiskalt".to_string(),
            share: None,
            hubs: Vec::new(),
            passwords: Vec::new(),
            description: "EiskaltDC++ test peer".to_string(),
            passive: false,
            tls: false,
            compress: false,
            slots: 10,
            settings: Vec::new(),
        }
    }
}

/// One user as the peer sees it on a hub (`hub.getuserinfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    /// Nick.
    pub nick: String,
    /// CID (base32); on NMDC hubs a hash of nick and hub URL.
    pub cid: String,
    /// Shared bytes as announced.
    pub share: u64,
    /// The client tag, e.g. `<EiskaltDC++ 2.4.2,M:A,H:0/0/0,S:10>` (NMDC style also on ADC).
    pub tag: String,
    /// Description.
    pub description: String,
    /// E-mail.
    pub email: String,
    /// IP address, when the hub gave one.
    pub ip: String,
    /// Connection / upload speed text.
    pub connection: String,
    /// The hub says this user is an operator.
    pub is_op: bool,
    /// The user is passive (firewalled).
    pub passive: bool,
    /// Everything the daemon returned.
    pub raw: Map<String, Value>,
}

/// One main-chat message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// The sender for `<nick> text` lines; `None` for anything else (e.g. `/me` lines).
    pub nick: Option<String>,
    /// The message text (line breaks as `\n`).
    pub text: String,
}

/// Search type codes of `search.send` (the DC++ `SearchManager::TypeModes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchType {
    /// Any file or folder.
    Any = 0,
    /// Audio files.
    Audio = 1,
    /// Archives.
    Compressed = 2,
    /// Documents.
    Document = 3,
    /// Executables.
    Executable = 4,
    /// Pictures.
    Picture = 5,
    /// Videos.
    Video = 6,
    /// Folders.
    Directory = 7,
    /// The query is a TTH root (base32, 39 characters).
    Tth = 8,
    /// CD/DVD images.
    CdImage = 9,
}

/// How long [`Eiskalt::search_with`] collects results.
#[derive(Debug, Clone, Copy)]
pub struct SearchWait {
    /// Give up after this long (returning what arrived, possibly nothing).
    pub max: Duration,
    /// Stop early once this many results arrived and nothing new came for `quiet`.
    pub min_results: usize,
    /// See `min_results`.
    pub quiet: Duration,
}

impl Default for SearchWait {
    fn default() -> Self {
        SearchWait {
            max: Duration::from_secs(5),
            min_results: 1,
            quiet: Duration::from_millis(500),
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// Nick of the user who answered.
    pub nick: String,
    /// File (or folder) name.
    pub filename: String,
    /// Folder path in the answering user's share, `/`-separated with a trailing `/`.
    pub path: String,
    /// Size in bytes (folders: may be 0).
    pub size: u64,
    /// TTH root (files only).
    pub tth: Option<String>,
    /// Free upload slots announced.
    pub free_slots: u32,
    /// True for a folder.
    pub is_dir: bool,
    /// Answering user's IP as given in the result.
    pub ip: String,
    /// The hub the result came through.
    pub hub_url: String,
    /// Answering user's CID.
    pub cid: String,
    /// Everything the daemon returned.
    pub raw: Map<String, Value>,
}

/// One entry of a folder in a downloaded file list (`list.lsdir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// File or folder name.
    pub name: String,
    /// Size in bytes (a folder: its total).
    pub size: u64,
    /// TTH root (files only).
    pub tth: Option<String>,
    /// True for a folder.
    pub is_dir: bool,
}

/// A running EiskaltDC++ daemon; stopped by pid when dropped.
#[derive(Debug)]
pub struct Eiskalt {
    opts: EiskaltOptions,
    rpc: JsonRpc,
    daemon: Option<Daemon>,
    tcp_port: Port,
    tls_port: Port,
    rpc_port: Port,
    root: PathBuf,
    cfg: PathBuf,
    /// Chat received per hub URL (the daemon hands each line out once).
    chat: Mutex<HashMap<String, Vec<ChatLine>>>,
    /// Hubs removed with `hub.del`: after one, `hub.listfulldesc` would crash the daemon.
    removed_hubs: Mutex<HashSet<String>>,
    // Dropped last: the directory outlives the process.
    dir: Option<tempfile::TempDir>,
}

impl Eiskalt {
    /// Writes the configuration, starts the daemon, waits for JSON-RPC, shares
    /// `opts.share` (waiting for hashing), joins `opts.hubs` and waits until the peer
    /// sees itself in each hub's user list. A peer that fails half-way is stopped.
    pub fn start(opts: EiskaltOptions) -> Result<Eiskalt> {
        let daemon_bin = find_binary(DAEMON)?;
        if opts.nick.is_empty() || opts.nick.contains(['$', '|', ' ', '<', '>']) {
            bail!("eiskalt nick {:?} is empty or has NMDC/XML special characters", opts.nick);
        }
        let dir = component_dir(&format!("eiskalt-{}", opts.nick))?;
        let root = dir.path().to_path_buf();
        let cfg = root.join("cfg");
        for sub in ["cfg/Logs", "downloads", "incomplete"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let (tcp_port, tls_port, rpc_port) = (free_port()?, free_port()?, free_port()?);
        let settings = settings_xml(&opts, &root, tcp_port.get(), tls_port.get());
        let path = cfg.join("DCPlusPlus.xml");
        fs::write(&path, settings).with_context(|| format!("writing {}", path.display()))?;
        if !opts.passwords.is_empty() {
            let path = cfg.join("Favorites.xml");
            fs::write(&path, favorites_xml(&opts))
                .with_context(|| format!("writing {}", path.display()))?;
        }

        let pidfile = root.join("daemon.pid");
        let log = root.join("daemon.log");
        let launcher_log = root.join("launcher.out");
        let mut cmd = Command::new(daemon_bin);
        cmd.arg("-d")
            .arg("-c")
            .arg(format!("{}/", cfg.display()))
            .arg("-l")
            .arg(format!("{}/", cfg.display()))
            .arg("-P")
            .arg(rpc_port.get().to_string())
            .arg("-L")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(&pidfile)
            .arg("-S")
            .arg(&log)
            .current_dir(&root);
        let (out, err) = log_stdio(&launcher_log)?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: the closure runs between fork and exec and only calls setrlimit, which
        // is async-signal-safe. It disables core dumps: the daemon segfaults on shutdown.
        unsafe {
            cmd.pre_exec(|| {
                let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                if libc::setrlimit(libc::RLIMIT_CORE, &none) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut launcher = cmd.spawn().with_context(|| format!("starting {DAEMON}"))?;
        // With -d the launcher forks the daemon and exits at once.
        let status = wait_until(
            &format!("{DAEMON} -d to detach"),
            Duration::from_secs(10),
            Duration::from_millis(10),
            || Ok(launcher.try_wait()?),
        );
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                let _ = launcher.kill();
                let _ = launcher.wait();
                bail!("{e:#}\n{}", log_excerpt(&launcher_log));
            }
        };
        if !status.success() {
            bail!(
                "{DAEMON} -d failed: {status}\n{}\n{}",
                log_excerpt(&launcher_log),
                log_excerpt(&log)
            );
        }
        let marker = cfg.display().to_string();
        let pid = wait_until(
            &format!("{DAEMON} to write its pid to {}", pidfile.display()),
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                Ok(fs::read_to_string(&pidfile)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                    .filter(|p| *p > 0))
            },
        );
        let pid = match pid {
            Ok(pid) => pid,
            Err(e) => {
                // Don't leave a daemon without a pid file behind: find it by its private
                // config directory, which nothing else has on its command line.
                for pid in pids_with_marker(&marker) {
                    drop(Daemon::new(DAEMON, pid, &marker));
                }
                bail!("{e:#}\n{}", log_excerpt(&log));
            }
        };
        let peer = Eiskalt {
            rpc: JsonRpc::new(rpc_port.get(), Duration::from_secs(10)),
            daemon: Some(Daemon::new(&format!("{DAEMON} {}", opts.nick), pid, &marker)),
            opts,
            tcp_port,
            tls_port,
            rpc_port,
            root,
            cfg,
            chat: Mutex::new(HashMap::new()),
            removed_hubs: Mutex::new(HashSet::new()),
            dir: Some(dir),
        };
        // From here on, an error drops `peer`, which stops the daemon.
        wait_until(
            &format!("JSON-RPC of {DAEMON} on 127.0.0.1:{}", peer.rpc_port.get()),
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                if !peer.is_running() {
                    bail!("{DAEMON} (pid {pid}) exited");
                }
                Ok(peer.rpc.call("show.version", json!({})).ok())
            },
        )
        .with_context(|| peer.diagnostics())?;
        if let Some(share) = peer.opts.share.clone() {
            peer.share(&share)?;
        }
        for hub in peer.opts.hubs.clone() {
            peer.add_hub(&hub)?;
        }
        Ok(peer)
    }

    /// The nick.
    pub fn nick(&self) -> &str {
        &self.opts.nick
    }

    /// The peer's directory (`cfg/` with settings and logs, `downloads/`, `daemon.log`).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The daemon's pid while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.daemon.as_ref().filter(|d| d.is_running()).map(Daemon::pid)
    }

    /// True while the daemon runs.
    pub fn is_running(&self) -> bool {
        self.daemon.as_ref().is_some_and(Daemon::is_running)
    }

    /// The TCP (transfers) and UDP (search results) port, on 127.0.0.1.
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port.get()
    }

    /// The TLS transfer port (used with [`EiskaltOptions::tls`]).
    pub fn tls_port(&self) -> u16 {
        self.tls_port.get()
    }

    /// The JSON-RPC port.
    pub fn rpc_port(&self) -> u16 {
        self.rpc_port.get()
    }

    /// Raw JSON-RPC call (`system.describe` lists the methods); `params` is an object.
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value> {
        self.rpc.call(method, params).with_context(|| format!("peer {}", self.opts.nick))
    }

    /// Calls a method that answers 0 on success (and 1 or an error text otherwise).
    fn rpc_ok(&self, method: &str, params: Value) -> Result<()> {
        let r = self.rpc(method, params.clone())?;
        if r == json!(0) || r == json!("0") {
            Ok(())
        } else {
            bail!("peer {}: {method} {params} answered {r}", self.opts.nick)
        }
    }

    /// The daemon's log (`daemon.log`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
    }

    /// Every protocol command exchanged with hubs and clients so far, in and out
    /// (`HUB_IN`/`HUB_OUT`/`CLIENT_IN`/`CLIENT_OUT` lines of `CmdDebug.log`).
    pub fn trace(&self) -> String {
        fs::read_to_string(self.cfg.join("Logs").join("CmdDebug.log")).unwrap_or_default()
    }

    /// Tails of the daemon log, hub status messages and protocol trace, for error messages.
    fn diagnostics(&self) -> String {
        let logs = self.cfg.join("Logs");
        format!(
            "peer {} (dir {}):\n{}\n{}\n--- last lines of the protocol trace ---\n{}\n---",
            self.opts.nick,
            self.root.display(),
            log_excerpt(&self.root.join("daemon.log")),
            log_excerpt(&logs.join("status.log")),
            tail(&logs.join("CmdDebug.log"), 30)
        )
    }

    // ------------------------------------------------------------------ hubs

    /// Hub URLs the daemon has a connection object for (`hub.list`).
    pub fn hub_urls(&self) -> Result<Vec<String>> {
        let list = self.rpc("hub.list", json!({"separator": "\n"}))?;
        Ok(split_nonempty(list.as_str().unwrap_or_default(), "\n"))
    }

    fn check_hub(&self, hub: &str) -> Result<()> {
        let hubs = self.hub_urls()?;
        if !hubs.iter().any(|h| h == hub) {
            bail!("peer {} has no hub {hub:?} (its hubs: {hubs:?})", self.opts.nick);
        }
        Ok(())
    }

    /// Joins `hub` and waits (≤ 10 s) until logged in.
    pub fn add_hub(&self, hub: &str) -> Result<()> {
        self.rpc("hub.add", json!({"huburl": hub, "enc": ""}))?;
        self.wait_logged_in(hub)
    }

    /// Leaves `hub` (`hub.del`).
    pub fn remove_hub(&self, hub: &str) -> Result<()> {
        self.check_hub(hub)?;
        self.rpc("hub.del", json!({"huburl": hub}))?;
        self.removed_hubs.lock().expect("removed_hubs lock").insert(hub.to_string());
        Ok(())
    }

    /// Waits (≤ 10 s) until the peer sees itself in `hub`'s user list.
    pub fn wait_logged_in(&self, hub: &str) -> Result<()> {
        let me = self.opts.nick.clone();
        wait_until(
            &format!("peer {me} to log in to {hub}"),
            WAIT,
            Duration::from_millis(50),
            || Ok(self.nicks(hub)?.contains(&me).then_some(())),
        )
        .with_context(|| {
            format!("{}\nhub status messages: {:?}", self.diagnostics(), self.status_messages(hub))
        })
    }

    /// `hub.listfulldesc`: per hub URL, `connected`, `users`, `totalshare`, `hubname`, ...
    ///
    /// Refused after [`Eiskalt::remove_hub`]: the daemon would dereference a null pointer.
    pub fn hubs_full(&self) -> Result<Value> {
        let removed = self.removed_hubs.lock().expect("removed_hubs lock").clone();
        if !removed.is_empty() {
            bail!("hub.listfulldesc after hub.del crashes eiskaltdcpp-daemon 2.4.2 (removed: {removed:?})");
        }
        self.rpc("hub.listfulldesc", json!({}))
    }

    /// Nicks in `hub`'s user list (the peer itself included once logged in).
    pub fn nicks(&self, hub: &str) -> Result<Vec<String>> {
        // Checked first: hub.getusers with an unknown URL corrupts the daemon's hub table.
        self.check_hub(hub)?;
        let list = self.rpc("hub.getusers", json!({"huburl": hub, "separator": "\n"}))?;
        Ok(split_nonempty(list.as_str().unwrap_or_default(), "\n"))
    }

    /// Everyone in `hub`'s user list, with their details.
    pub fn users(&self, hub: &str) -> Result<Vec<UserInfo>> {
        let mut out = Vec::new();
        for nick in self.nicks(hub)? {
            if let Some(u) = self.user(hub, &nick)? {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// One user's details; `None` if not (or no longer) on the hub.
    pub fn user(&self, hub: &str, nick: &str) -> Result<Option<UserInfo>> {
        self.check_hub(hub)?;
        let info = self.rpc("hub.getuserinfo", json!({"huburl": hub, "nick": nick}))?;
        let Value::Object(raw) = info else { return Ok(None) };
        if raw.is_empty() {
            return Ok(None);
        }
        let s = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let icon = s("Icon");
        Ok(Some(UserInfo {
            nick: s("Nick"),
            cid: s("CID"),
            share: s("Shared").parse().unwrap_or(0),
            tag: s("Tag"),
            description: s("Description"),
            email: s("eMail"),
            ip: s("IP"),
            connection: s("Connection"),
            is_op: icon.contains("-op"),
            passive: icon.contains("-fw"),
            raw,
        }))
    }

    /// Waits (≤ 10 s) until `nick` is in `hub`'s user list and returns their details.
    pub fn wait_user(&self, hub: &str, nick: &str) -> Result<UserInfo> {
        wait_until(
            &format!("{nick} to appear on {hub} for peer {}", self.opts.nick),
            WAIT,
            Duration::from_millis(50),
            || self.user(hub, nick),
        )
    }

    /// Waits (≤ 10 s) until `nick` is no longer in `hub`'s user list.
    pub fn wait_user_gone(&self, hub: &str, nick: &str) -> Result<()> {
        wait_until(
            &format!("{nick} to leave {hub} for peer {}", self.opts.nick),
            WAIT,
            Duration::from_millis(50),
            || Ok((!self.nicks(hub)?.iter().any(|n| n == nick)).then_some(())),
        )
    }

    /// The hub's status messages to this peer (e.g. refusals), from `status.log`.
    pub fn status_messages(&self, hub: &str) -> Vec<String> {
        let text = fs::read_to_string(self.cfg.join("Logs").join("status.log")).unwrap_or_default();
        tagged_entries(&text, hub)
    }

    // ------------------------------------------------------------------ chat

    /// Sends `text` to `hub`'s main chat.
    pub fn say(&self, hub: &str, text: &str) -> Result<()> {
        self.check_hub(hub)?;
        self.rpc_ok("hub.say", json!({"huburl": hub, "message": text}))
    }

    /// Sends a private message to `nick` on `hub`.
    pub fn pm(&self, hub: &str, nick: &str, text: &str) -> Result<()> {
        self.check_hub(hub)?;
        self.rpc_ok("hub.pm", json!({"huburl": hub, "nick": nick, "message": text}))
            .with_context(|| format!("PM to {nick}: is {nick} on {hub}?"))
    }

    /// Every main-chat message received from `hub` since the peer joined (hub banners
    /// included), oldest first.
    pub fn chat(&self, hub: &str) -> Result<Vec<ChatLine>> {
        self.check_hub(hub)?;
        let got = self.rpc("hub.getchat", json!({"huburl": hub, "separator": CHAT_SEPARATOR}))?;
        let got = got.as_str().unwrap_or_default();
        let mut chat = self.chat.lock().expect("chat lock");
        let lines = chat.entry(hub.to_string()).or_default();
        for entry in got.split(CHAT_SEPARATOR).filter(|e| !e.is_empty()) {
            lines.push(parse_chat(entry));
        }
        Ok(lines.clone())
    }

    /// [`Eiskalt::chat`] as `<nick> text` strings.
    pub fn chat_lines(&self, hub: &str) -> Result<Vec<String>> {
        Ok(self
            .chat(hub)?
            .into_iter()
            .map(|l| match l.nick {
                Some(n) => format!("<{n}> {}", l.text),
                None => l.text,
            })
            .collect())
    }

    /// Waits (≤ 10 s) for a main-chat message from `nick` (any sender if `None`) whose
    /// text contains `needle`.
    pub fn wait_chat(&self, hub: &str, nick: Option<&str>, needle: &str) -> Result<ChatLine> {
        wait_until(
            &format!("peer {} to read {needle:?} from {nick:?} in {hub}'s chat", self.opts.nick),
            WAIT,
            Duration::from_millis(50),
            || {
                Ok(self.chat(hub)?.into_iter().find(|l| {
                    l.text.contains(needle) && nick.is_none_or(|n| l.nick.as_deref() == Some(n))
                }))
            },
        )
    }

    /// Texts of the private messages received from `nick` on `hub`, oldest first (from
    /// the daemon's PM log).
    ///
    /// Only received ones: the daemon logs a PM under the nick of its reply-to user, which
    /// for a message the peer sent itself is the peer's own nick, without the recipient.
    pub fn pms(&self, hub: &str, nick: &str) -> Result<Vec<String>> {
        let path = self.cfg.join("Logs").join("PM").join(format!("{nick}.log"));
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let prefix = format!("<{nick}> ");
        Ok(tagged_entries(&text, hub)
            .into_iter()
            .filter_map(|m| m.strip_prefix(&prefix).map(str::to_string))
            .collect())
    }

    /// Waits (≤ 10 s) for a private message from `nick` on `hub` containing `needle`.
    pub fn wait_pm(&self, hub: &str, nick: &str, needle: &str) -> Result<String> {
        wait_until(
            &format!("peer {} to receive a PM from {nick} containing {needle:?}", self.opts.nick),
            WAIT,
            Duration::from_millis(50),
            || Ok(self.pms(hub, nick)?.into_iter().find(|m| m.contains(needle))),
        )
    }

    // ------------------------------------------------------------------ share

    /// Shares `dir` (virtual name: its file name) and waits (≤ 60 s) until every file in
    /// it is hashed and in the share.
    pub fn share(&self, dir: &Path) -> Result<()> {
        let dir =
            fs::canonicalize(dir).with_context(|| format!("share folder {}", dir.display()))?;
        let virt = dir.file_name().and_then(|n| n.to_str()).unwrap_or("share").to_string();
        let total = shareable_bytes(&dir)?;
        let dir_arg = format!("{}/", dir.display());
        self.rpc_ok("share.add", json!({"directory": dir_arg, "virtname": virt}))?;
        let mut idle_polls = 0;
        wait_until(
            &format!("peer {} to hash {} ({total} bytes)", self.opts.nick, dir.display()),
            Duration::from_secs(60),
            Duration::from_millis(50),
            || {
                let h = self.rpc("hash.status", json!({}))?;
                let idle = h["bytesleft"].as_u64() == Some(0)
                    && h["filesleft"].as_u64() == Some(0)
                    && h["status"].as_str() != Some("hashing");
                idle_polls = if idle { idle_polls + 1 } else { 0 };
                // Idle twice in a row, and the share holds (about) every byte on disk:
                // share.list gives sizes rounded for display.
                Ok((idle_polls >= 2 && self.shared_bytes(&dir)? >= total as f64 * 0.99)
                    .then_some(()))
            },
        )
        .with_context(|| self.diagnostics())
    }

    /// Approximate bytes shared from the real folder `dir` (from `share.list`).
    fn shared_bytes(&self, dir: &Path) -> Result<f64> {
        let list = self.rpc("share.list", json!({"separator": "|"}))?;
        let want = dir.display().to_string();
        let mut total = 0.0;
        for line in list.as_str().unwrap_or_default().lines() {
            let parts: Vec<&str> = line.split('|').collect();
            if parts.len() >= 3 && parts[0].trim_end_matches('/') == want.trim_end_matches('/') {
                total += parse_size(parts[2]);
            }
        }
        Ok(total)
    }

    // ------------------------------------------------------------------ search

    /// Searches `hub` (every joined hub if `None`) and collects results for up to 5 s,
    /// returning after the first one once 0.5 s pass without more.
    pub fn search(
        &self,
        hub: Option<&str>,
        query: &str,
        kind: SearchType,
    ) -> Result<Vec<SearchResult>> {
        self.search_with(hub, query, kind, SearchWait::default())
    }

    /// [`Eiskalt::search`] with explicit waiting rules.
    pub fn search_with(
        &self,
        hub: Option<&str>,
        query: &str,
        kind: SearchType,
        wait: SearchWait,
    ) -> Result<Vec<SearchResult>> {
        let hubs = match hub {
            Some(h) => {
                self.check_hub(h)?;
                vec![h.to_string()]
            }
            None => self.hub_urls()?,
        };
        // search.clear without a URL would clear only the first hub.
        for h in &hubs {
            self.rpc("search.clear", json!({"huburl": h}))?;
        }
        self.rpc_ok(
            "search.send",
            json!({"searchstring": query, "searchtype": kind as i32, "sizemode": 0,
                   "sizetype": 0, "size": 0.0, "huburls": hubs.join(";")}),
        )?;
        let start = Instant::now();
        let mut results = Vec::new();
        let mut last_change = start;
        while start.elapsed() < wait.max {
            let mut now = Vec::new();
            for h in &hubs {
                now.extend(self.search_results(h)?);
            }
            if now.len() != results.len() {
                last_change = Instant::now();
            }
            results = now;
            if results.len() >= wait.min_results && last_change.elapsed() >= wait.quiet {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(results)
    }

    /// The results collected so far for `hub` (`search.getresults`).
    pub fn search_results(&self, hub: &str) -> Result<Vec<SearchResult>> {
        let got = self.rpc("search.getresults", json!({"huburl": hub}))?;
        let items = match got {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => bail!("search.getresults answered {other}"),
        };
        Ok(items
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(raw) => Some(search_result(raw)),
                _ => None,
            })
            .collect())
    }

    // ------------------------------------------------------------------ transfers

    /// The download queue (`queue.list`): target path -> details (`Status`, `Downloaded`,
    /// `Errors`, `Users`, `TTH`, ...).
    pub fn queue(&self) -> Result<Map<String, Value>> {
        match self.rpc("queue.list", json!({}))? {
            Value::Object(m) => Ok(m),
            Value::Null => Ok(Map::new()),
            other => bail!("queue.list answered {other}"),
        }
    }

    /// Queues `dir/name` for download by TTH (no source yet: see [`Eiskalt::download_tth`]).
    pub fn queue_add(&self, dir: &Path, name: &str, size: u64, tth: &str) -> Result<PathBuf> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir_s = dir.display().to_string();
        self.rpc_ok(
            "queue.add",
            json!({"directory": dir_s, "filename": name, "size": size, "tth": tth}),
        )?;
        Ok(dir.join(name))
    }

    /// Downloads the file with root `tth` and `size` bytes as `dir/name` from whoever has
    /// it on `hub`: queues it, searches for the TTH (which attaches sources; repeated
    /// every 3 s while none is found), and waits up to `timeout` for the complete file.
    pub fn download_tth(
        &self,
        hub: &str,
        tth: &str,
        size: u64,
        name: &str,
        dir: &Path,
        timeout: Duration,
    ) -> Result<PathBuf> {
        let target = self.queue_add(dir, name, size, tth)?;
        let target_s = target.display().to_string();
        let mut last_search: Option<Instant> = None;
        self.wait_download(&target, size, timeout, |peer| {
            let sourced = peer
                .rpc("queue.getsources", json!({"target": target_s, "separator": ","}))
                .map(|v| v["online"].as_u64().unwrap_or(0) > 0)
                .unwrap_or(false);
            if !sourced && last_search.is_none_or(|t| t.elapsed() >= Duration::from_secs(3)) {
                last_search = Some(Instant::now());
                peer.rpc("search.clear", json!({"huburl": hub}))?;
                peer.rpc_ok(
                    "search.send",
                    json!({"searchstring": tth, "searchtype": SearchType::Tth as i32,
                           "sizemode": 0, "sizetype": 0, "size": 0.0, "huburls": hub}),
                )?;
            }
            Ok(())
        })?;
        Ok(target)
    }

    /// Waits until `target` has left the queue and exists with `size` bytes, calling
    /// `tick` between polls.
    fn wait_download(
        &self,
        target: &Path,
        size: u64,
        timeout: Duration,
        mut tick: impl FnMut(&Eiskalt) -> Result<()>,
    ) -> Result<()> {
        let key = target.display().to_string();
        wait_until(
            &format!("peer {} to download {key} ({size} bytes)", self.opts.nick),
            timeout,
            Duration::from_millis(50),
            || {
                tick(self)?;
                let queue = self.queue()?;
                if let Some(item) = queue.get(&key) {
                    bail!("still queued: {item}");
                }
                let len = fs::metadata(target).map(|m| m.len()).ok();
                Ok((len == Some(size)).then_some(()))
            },
        )
        .with_context(|| self.diagnostics())
    }

    /// Fetches `nick`'s file list on `hub` and opens it; returns its name (for
    /// [`Eiskalt::list_dir`] and [`Eiskalt::download_from_list`]).
    pub fn download_file_list(&self, hub: &str, nick: &str, timeout: Duration) -> Result<String> {
        self.check_hub(hub)?;
        let lists = self.cfg.join("FileLists");
        let asked = SystemTime::now();
        self.rpc_ok("list.download", json!({"huburl": hub, "nick": nick}))
            .with_context(|| format!("is {nick} on {hub}?"))?;
        let prefix = format!("{nick}.");
        let name = wait_until(
            &format!("peer {} to receive {nick}'s file list", self.opts.nick),
            timeout,
            Duration::from_millis(50),
            || {
                if self.queue()?.keys().any(|t| t.contains("FileLists")) {
                    return Ok(None);
                }
                let Ok(entries) = fs::read_dir(&lists) else { return Ok(None) };
                let mut newest: Option<(SystemTime, String)> = None;
                for e in entries.flatten() {
                    let n = e.file_name().to_string_lossy().to_string();
                    let is_list = n.ends_with(".xml.bz2") || n.ends_with(".xml");
                    let Ok(mtime) = e.metadata().and_then(|m| m.modified()) else { continue };
                    // mtime has a coarser clock than SystemTime::now(): allow 1 s.
                    let fresh = mtime + Duration::from_secs(1) >= asked;
                    if n.starts_with(&prefix)
                        && is_list
                        && fresh
                        && newest.as_ref().is_none_or(|(t, _)| mtime > *t)
                    {
                        newest = Some((mtime, n));
                    }
                }
                Ok(newest.map(|(_, n)| n))
            },
        )
        .with_context(|| self.diagnostics())?;
        self.open_list(&name)?;
        Ok(name)
    }

    /// Opens a file list (asynchronous in the daemon: reopened until its root has entries).
    fn open_list(&self, filelist: &str) -> Result<()> {
        wait_until(
            &format!("peer {} to open file list {filelist}", self.opts.nick),
            WAIT,
            Duration::from_millis(100),
            || {
                let _ = self.rpc("list.close", json!({"filelist": filelist}));
                self.rpc("list.open", json!({"filelist": filelist}))?;
                // If it was opened while still being written it stays empty: retry.
                for _ in 0..10 {
                    let root =
                        self.rpc("list.lsdir", json!({"directory": "", "filelist": filelist}))?;
                    if root.as_object().is_some_and(|m| !m.is_empty()) {
                        return Ok(Some(()));
                    }
                    thread::sleep(Duration::from_millis(100));
                }
                Ok(None)
            },
        )
    }

    /// The entries of folder `path` (`/`-separated, `""` for the root) in an opened file
    /// list, sorted by name.
    pub fn list_dir(&self, filelist: &str, path: &str) -> Result<Vec<ListEntry>> {
        let got = self
            .rpc("list.lsdir", json!({"directory": list_dir_path(path), "filelist": filelist}))?;
        let Value::Object(map) = got else { return Ok(Vec::new()) };
        let mut out: Vec<ListEntry> = map
            .into_iter()
            .map(|(name, info)| {
                let tth = info["TTH"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
                ListEntry {
                    name,
                    size: info["Size"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0),
                    is_dir: tth.is_none(),
                    tth,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Downloads the file at `path` (`/`-separated, e.g. `share/big.bin`) of an opened
    /// file list into `dir`; waits up to `timeout` for it to complete.
    pub fn download_from_list(
        &self,
        filelist: &str,
        path: &str,
        dir: &Path,
        timeout: Duration,
    ) -> Result<PathBuf> {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let entry = self
            .list_dir(filelist, parent)?
            .into_iter()
            .find(|e| e.name == name && !e.is_dir)
            .with_context(|| format!("{path} is not a file in {filelist}"))?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let target = dir.join(name);
        self.rpc_ok(
            "list.downloadfile",
            json!({"target": path.replace('/', "\\"), "downloadto": dir.display().to_string(),
                   "filelist": filelist}),
        )?;
        self.wait_download(&target, entry.size, timeout, |_| Ok(()))?;
        Ok(target)
    }

    // ------------------------------------------------------------------ stop

    /// Stops the daemon (SIGTERM, SIGKILL after 3 s).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(daemon) = self.daemon.take() {
            daemon.stop(Duration::from_secs(3))?;
        }
        Ok(())
    }
}

impl Drop for Eiskalt {
    fn drop(&mut self) {
        // Killed at once (see `process::Daemon`'s drop), before its directory goes.
        drop(self.daemon.take());
        if let Some(dir) = self.dir.take() {
            release_dir(dir, &format!("eiskalt {}", self.opts.nick));
        }
    }
}

// ---------------------------------------------------------------------- helpers

fn split_nonempty(s: &str, sep: &str) -> Vec<String> {
    s.split(sep).filter(|x| !x.is_empty()).map(str::to_string).collect()
}

/// `[HH:MM:SS] <nick> text` (as `hub.getchat` gives it) -> a [`ChatLine`].
fn parse_chat(entry: &str) -> ChatLine {
    let entry = entry.replace("\r\n", "\n");
    let rest = match entry.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((_, rest)) => rest,
        None => entry.as_str(),
    };
    if let Some(body) = rest.strip_prefix('<') {
        if let Some((nick, text)) = body.split_once("> ") {
            return ChatLine { nick: Some(nick.to_string()), text: text.to_string() };
        }
    }
    ChatLine { nick: None, text: rest.to_string() }
}

/// Entries of a log written with the format `%[hubURL]\t%[message]` that belong to `hub`.
/// A line without a hub tag continues the previous (multi-line) message.
fn tagged_entries(text: &str, hub: &str) -> Vec<String> {
    let mut out: Vec<(bool, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        match line.split_once('\t') {
            Some((hubs, msg)) if hubs.contains("://") => {
                let mine = hubs.split([',', ' ']).any(|h| h == hub);
                out.push((mine, msg.to_string()));
            }
            _ => {
                if let Some((_, last)) = out.last_mut() {
                    last.push('\n');
                    last.push_str(line);
                }
            }
        }
    }
    out.into_iter().filter(|(mine, _)| *mine).map(|(_, m)| m).collect()
}

fn search_result(raw: Map<String, Value>) -> SearchResult {
    let s = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let tth = Some(s("TTH")).filter(|t| !t.is_empty());
    SearchResult {
        nick: s("Nick"),
        filename: s("Filename"),
        path: s("Path"),
        size: s("Real Size").parse().unwrap_or(0),
        is_dir: tth.is_none(),
        tth,
        free_slots: s("Free Slots").parse().unwrap_or(0),
        ip: s("IP"),
        hub_url: s("Hub URL"),
        cid: s("CID"),
        raw,
    }
}

/// `share/sub` -> `share\sub\` (the file list's separator, with the trailing one).
fn list_dir_path(path: &str) -> String {
    let p = path.trim_matches('/').replace('/', "\\");
    if p.is_empty() {
        p
    } else {
        p + "\\"
    }
}

/// Bytes of the files the daemon will share under `dir`: no hidden files or folders, no
/// symbolic links (its defaults).
fn shareable_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                total += e.metadata()?.len();
            }
        }
    }
    Ok(total)
}

/// `"1.50 MiB"` -> bytes (as `share.list` formats sizes).
fn parse_size(text: &str) -> f64 {
    let mut it = text.split_whitespace();
    let (Some(num), unit) = (it.next(), it.next()) else { return 0.0 };
    let Ok(num) = num.parse::<f64>() else { return 0.0 };
    let mult = match unit {
        Some("KiB") => 1024.0,
        Some("MiB") => 1024.0 * 1024.0,
        Some("GiB") => 1024.0 * 1024.0 * 1024.0,
        Some("TiB") => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    num * mult
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `DCPlusPlus.xml`: the settings that keep the daemon on loopback and make it testable.
fn settings_xml(opts: &EiskaltOptions, root: &Path, tcp: u16, tls: u16) -> String {
    // The private ID ("CID" setting): 24 random bytes in base32.
    let pid = data_encoding::BASE32_NOPAD.encode(&rand::random::<[u8; 24]>());
    let dirs = |sub: &str| format!("{}/", root.join(sub).display());
    let int = |v: i64| (v.to_string(), true);
    let text = |v: &str| (v.to_string(), false);
    let mut s: Vec<(&str, (String, bool))> = vec![
        // Without it the daemon takes the file for an old one (0.181) and drops the
        // LogFile*/LogFormat* settings below as obsolete.
        ("ConfigVersion", text("2.4.2")),
        ("Nick", text(&opts.nick)),
        ("CID", text(&pid)),
        ("Description", text(&opts.description)),
        ("EMail", text("")),
        ("UploadSpeed", text("100")),
        // Connectivity: everything on 127.0.0.1. 0 = active, 3 = passive.
        ("IncomingConnections", int(if opts.passive { 3 } else { 0 })),
        ("OutgoingConnections", int(0)),
        ("InPort", int(tcp.into())),
        ("UDPPort", int(tcp.into())),
        ("TLSPort", int(tls.into())),
        ("BindAddress", text("127.0.0.1")),
        ("ExternalIp", text("127.0.0.1")),
        ("NoIpOverride", int(1)),
        ("AutoDetectIncomingConnection", int(0)),
        // Off: DHT bootstraps from the internet, DynDNS and hub lists fetch from it.
        ("UseDHT", int(0)),
        ("EnableDynDNS", int(0)),
        ("HublistServers", text("")),
        ("UseTLS", int(opts.tls.into())),
        ("RequireTLS", int(0)),
        ("AllowUntrustedHubs", int(1)),
        ("AllowUntrustedClients", int(1)),
        // Sharing and hashing: no 60 s delay before hashing starts.
        ("HashingStartDelay", int(0)),
        ("AutoRefreshTime", int(0)),
        ("MaxHashSpeed", int(0)),
        ("ShareHidden", int(0)),
        ("FollowLinks", int(0)),
        // Transfers.
        ("Slots", int(opts.slots.into())),
        ("SlotsPrimaryLimiting", int(opts.slots.into())),
        ("SlotsAlternateLimiting", int(opts.slots.into())),
        ("DownloadSlots", int(0)),
        ("SetMinislotSize", int(512)),
        ("CompressTransfers", int(opts.compress.into())),
        ("SegmentedDL", int(1)),
        ("MinimumSearchInterval", int(0)),
        ("AutoSearch", int(0)),
        ("AutoSearchAutoMatch", int(0)),
        ("ReconnectDelay", int(1)),
        ("AutoFollow", int(0)),
        ("GetUserCountry", int(0)),
        ("KeepLists", int(1)),
        ("DownloadDirectory", text(&dirs("downloads"))),
        ("TempDownloadDirectory", text(&dirs("incomplete"))),
        ("LogDirectory", text(&dirs("cfg/Logs"))),
        // Logs read back by this module: PMs and hub status messages tagged with the hub,
        // and the protocol trace (CmdDebug.log).
        ("LogPrivateChat", int(1)),
        ("LogFilePrivateChat", text("PM/%[userNI].log")),
        ("LogFormatPrivateChat", text("%[hubURL]\t%[message]")),
        ("LogStatusMessages", int(1)),
        ("LogFileStatus", text("status.log")),
        ("LogFormatStatus", text("%[hubURL]\t%[message]")),
        ("LogMainChat", int(1)),
        ("LogDownloads", int(1)),
        ("LogUploads", int(1)),
        ("LogSystem", int(1)),
        ("LogCmdDebug", int(1)),
    ];
    for (k, v) in &opts.settings {
        let is_int = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        s.retain(|(name, _)| name != k);
        s.push((k.as_str(), (v.clone(), is_int)));
    }
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>\n<DCPlusPlus>\n\t<Settings>\n",
    );
    for (k, (v, is_int)) in s {
        let t = if is_int { "int" } else { "string" };
        writeln!(xml, "\t\t<{k} type=\"{t}\">{}</{k}>", xml_escape(&v))
            .expect("writing to a String");
    }
    xml.push_str("\t</Settings>\n</DCPlusPlus>\n");
    xml
}

/// `Favorites.xml` with one favourite hub per password (not auto-connected: the harness
/// joins hubs itself); the daemon answers a hub's password request from it.
fn favorites_xml(opts: &EiskaltOptions) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>\n<Favorites>\n\t<Hubs>\n",
    );
    for (i, (url, pass)) in opts.passwords.iter().enumerate() {
        writeln!(
            xml,
            "\t\t<Hub Name=\"hub{i}\" Connect=\"0\" Description=\"\" Nick=\"{}\" Password=\"{}\" \
             Server=\"{}\" UserDescription=\"\" Encoding=\"\"/>",
            xml_escape(&opts.nick),
            xml_escape(pass),
            xml_escape(url)
        )
        .expect("writing to a String");
    }
    xml.push_str("\t</Hubs>\n\t<Users/>\n\t<UserCommands/>\n\t<FavoriteDirs/>\n</Favorites>\n");
    xml
}
