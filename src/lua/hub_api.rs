//! The hub part of the `dc` API: `dc.connect`, `dc.hubs`, `dc.search`, the
//! `dc.Hub` objects' natives, and the [`LuaHubSink`] that turns hub sessions'
//! [`HubEvent`]s into Lua events.
//!
//! # Events
//!
//! Every event table has `hub` (a `dc.Hub`, the same object for the same hub
//! within a state) and, when it comes from a line, `raw` (the line decoded
//! with the hub's charset). Names and fields are protocol-neutral: the ADC
//! session will report into the same events. Events nobody listens to are
//! not built (a `user_joined` flood costs nothing without a handler).
//!
//! - `chat` and `pm` have a default action: the line is shown to the user
//!   (the console, through the host's output; in `dclua run`, the log). A
//!   handler returning true consumes the event and hides it.
//! - `hub_raw`: every line from a hub, before the session processes it, when
//!   a handler or waiter exists. A handler returning true consumes the line:
//!   the session skips it. Lines go out in batches and the session waits for
//!   the batch's verdict before going on, so order is kept; the verdict is
//!   sent by an internal event queued after the batch.
//! - `hub_redirect`: a handler returning true vetoes following the redirect
//!   (the same internal-event mechanism answers the session).
//!
//! # Ownership
//!
//! A hub created by `dc.connect` belongs to the script that created it:
//! unloading the script disconnects it. Hubs of the configuration belong to
//! no script.
//!
//! # Searches
//!
//! `dc.search{...}` is an async call of the host (`native.await`): it sends
//! the search to the online hubs (or one), then collects for `timeout`
//! seconds (a small timer job ends it) the results that match it (NMDC
//! results carry no token; [`SearchHit::answers`] decides) and returns
//! them; each is also emitted as `search_result`. `max_results` ends the
//! wait early.
//! Each call gets each result once (a user's file is one result however
//! many times it is answered), and a search equal to one still running on
//! a hub is not sent there again: the two share the answers, as two bots
//! searching the same words at once would otherwise get everything twice.
//!
//! This module uses the hub registry and session handles only, never codec
//! internals.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};
use std::time::Duration;

use encoding_rs::Encoding;
use mlua::{Lua, MultiValue, Table};

use super::describe::{ApiEvent, ApiField, ApiFn};
use super::host::{Event, HostInner, LuaHost, ScriptId};
use super::value::{class_key, Value, OBJECT_CLASSES, RECORD_CLASSES};
use crate::address::HubUrl;
use crate::config::Config;
use crate::hub::{
    self, HubCommand, HubError, HubEvent, HubId, HubParams, HubSink, HubState, Hubs, Identity,
    SearchHit, User,
};
use crate::proto::tth::Tth;
use crate::runtime::JobId;
use crate::search::{FileType, Query};

/// Events queued in the host beyond which sessions stop reading.
pub const CONGESTION_LIMIT: usize = 20_000;

/// `dc.search`'s default timeout, in seconds.
pub const DEFAULT_SEARCH_TIMEOUT: f64 = 5.0;

/// The longest `dc.search` timeout, in seconds.
pub const MAX_SEARCH_TIMEOUT: f64 = 600.0;

/// The class name of hub objects.
const HUB_CLASS: &str = "dc.Hub";
/// The class of user records (methods from the prelude: `user:pm`).
const USER_CLASS: &str = "dc.User";
/// The class of search results (methods from the download extension:
/// `result:download`, `result:browse`, `result.user`).
const RESULT_CLASS: &str = "dc.SearchResult";

/// Internal events that answer sessions once the events before them were
/// dispatched. No script can want them: the name starts with a control
/// character.
const VERDICT_EVENT: &str = "\u{1}hub verdict";

/// Options `dc.connect` accepts.
const CONNECT_OPTIONS: &[&str] =
    &["nick", "password", "charset", "follow_redirects", "reconnect_delay", "description", "email"];

/// Options `dc.search` accepts.
const SEARCH_OPTIONS: &[&str] = &[
    "text",
    "tth",
    "type",
    "size",
    "min_size",
    "max_size",
    "exclude",
    "extensions",
    "hub",
    "timeout",
    "max_results",
];

/// How chat and PMs are shown when no handler consumes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatDisplay {
    /// Through the host's output (the console).
    Print,
    /// As log lines (target `chat`), for `dclua run` whose standard output
    /// belongs to the script.
    Log,
    /// Not shown.
    Off,
}

/// A `dc.search` waiting for results.
struct Collector {
    job: JobId,
    query: Query,
    hubs: Vec<HubId>,
    results: Vec<Value>,
    /// The results taken: hub, nick, path.
    seen: HashSet<(HubId, String, String)>,
    max: Option<usize>,
    note: Option<String>,
    /// The [`SearchTimer`] that ends it.
    timer: Option<JobId>,
}

#[derive(Default)]
struct ApiState {
    /// The script each script-created hub belongs to.
    owners: HashMap<HubId, ScriptId>,
    /// Address and protocol of every hub created here, for `hub.url` after
    /// the session ended.
    known: HashMap<HubId, (String, &'static str)>,
    searches: Vec<Collector>,
    /// The configuration's hubs this client connected, as configured.
    configured: Vec<(crate::config::HubConfig, HubId)>,
    sink: Option<Rc<LuaHubSink>>,
    display: Option<ChatDisplay>,
    /// See [`on_config`].
    appliers: Vec<ConfigApplier>,
}

/// The hub API's bookkeeping of `host`.
fn with_state<R>(host: &LuaHost, f: impl FnOnce(&mut ApiState) -> R) -> R {
    let state = host.ext::<RefCell<ApiState>>();
    let mut state = state.borrow_mut();
    f(&mut state)
}

/// Sets how chat and PMs are shown (default: [`ChatDisplay::Print`]).
pub fn set_chat_display(host: &LuaHost, display: ChatDisplay) {
    with_state(host, |s| s.display = Some(display));
}

fn chat_display(host: &LuaHost) -> ChatDisplay {
    with_state(host, |s| s.display.unwrap_or(ChatDisplay::Print))
}

/// The sink of `host` (one per host).
pub fn sink(host: &LuaHost) -> Rc<dyn HubSink> {
    with_state(host, |s| {
        if let Some(sink) = &s.sink {
            if sink.host.upgrade().is_some() {
                return sink.clone() as Rc<dyn HubSink>;
            }
        }
        let sink = Rc::new(LuaHubSink { host: host.downgrade() });
        s.sink = Some(sink.clone());
        sink as Rc<dyn HubSink>
    })
}

/// Connects to a hub whose events go to `host`'s scripts; `owner`: the
/// script it belongs to (disconnected when that script is unloaded).
pub fn connect(
    host: &LuaHost,
    params: HubParams,
    owner: Option<ScriptId>,
) -> Result<HubId, HubError> {
    let url = params.url.clone();
    let id = hub::connect(host.runtime(), &hubs(host), params, sink(host))?;
    let protocol = HubUrl::parse(&url).map(|a| a.protocol_name()).unwrap_or("nmdc");
    with_state(host, |s| {
        if s.known.len() >= 256 {
            // Forget hubs long gone (a script reconnecting in a loop).
            let live = hubs(host);
            s.known.retain(|h, _| live.get(*h).is_some());
        }
        s.known.insert(id, (url, protocol));
        if let Some(o) = owner {
            s.owners.insert(id, o);
        }
    });
    // The script lives at least as long as its hub (see the lifetime rule
    // in the host).
    if let Some(o) = owner {
        host.hold(o);
    }
    Ok(id)
}

/// What else a configuration sets, beside the hubs' identity (the peers'
/// and the downloads' options): given by the API's composition
/// ([`on_config`]), so that this namespace needs none of the others.
pub(crate) type ConfigApplier = Rc<dyn Fn(&LuaHost, &Config, &Identity)>;

/// Adds `apply` to what [`apply_config`] runs, before it announces the
/// identity.
pub(crate) fn on_config(host: &LuaHost, apply: ConfigApplier) {
    with_state(host, |s| s.appliers.push(apply));
}

/// Applies a configuration: our identity (announced again where it
/// changed), and what `on_config` added.
pub fn apply_config(host: &LuaHost, config: &Config) {
    // The share's figures stay: a configuration does not describe them.
    let hubs = hubs(host);
    let current = hubs.identity();
    let identity = Identity {
        share_size: current.share_size,
        shared_files: current.shared_files,
        ..config.identity()
    };
    let appliers = with_state(host, |s| s.appliers.clone());
    for apply in appliers {
        apply(host, config, &identity);
    }
    hubs.set_identity(host.runtime(), identity);
}

/// Applies a configuration and connects to its `autoconnect` hubs (at
/// start). Hubs that cannot start are logged.
pub fn connect_configured(host: &LuaHost, config: &Config) {
    apply_config(host, config);
    connect_new_hubs(host, config);
}

/// Connects the configuration's `autoconnect` hubs not connected yet.
fn connect_new_hubs(host: &LuaHost, config: &Config) {
    for h in config.autoconnect_hubs() {
        if with_state(host, |s| s.configured.iter().any(|(c, _)| c == h)) {
            continue;
        }
        match connect(host, h.params(config), None) {
            Ok(id) => with_state(host, |s| s.configured.push((h.clone(), id))),
            Err(e) => log::error!(target: "hub", "hub {}: {e}", h.url),
        }
    }
}

/// A reloaded configuration: its identity and settings applied; hubs it no
/// longer lists (or lists changed, or not to autoconnect) left, new ones
/// connected; hubs that scripts connected are not touched. Returns how many
/// hubs were left and joined.
pub fn reload_config(host: &LuaHost, config: &Config) -> (usize, usize) {
    apply_config(host, config);
    let gone: Vec<(String, HubId)> = with_state(host, |s| {
        let mut gone = Vec::new();
        s.configured.retain(|(c, id)| {
            let keep = config.autoconnect_hubs().any(|h| h == c);
            if !keep {
                gone.push((c.url.clone(), *id));
            }
            keep
        });
        gone
    });
    for (url, id) in &gone {
        log::info!(target: "hub", "hub {url}: no longer in the configuration as it was; leaving it");
        host.runtime().send(*id, HubCommand::Disconnect);
    }
    let before = with_state(host, |s| s.configured.len());
    connect_new_hubs(host, config);
    let joined = with_state(host, |s| s.configured.len()) - before;
    (gone.len(), joined)
}

/// A hub left for good (disconnected by its script, or its session ended):
/// it no longer keeps its script alive.
fn hub_gone(host: &LuaHost, id: HubId) {
    if let Some(owner) = with_state(host, |s| s.owners.remove(&id)) {
        host.release(owner);
    }
}

/// Called by the host when a script is unloaded: its hubs leave with it.
pub(crate) fn script_unloaded(host: &LuaHost, script: ScriptId) {
    let hubs: Vec<HubId> = with_state(host, |s| {
        let ids: Vec<HubId> =
            s.owners.iter().filter(|(_, o)| **o == script).map(|(h, _)| *h).collect();
        for id in &ids {
            s.owners.remove(id);
        }
        s.searches.retain(|c| host.job_alive(c.job));
        ids
    });
    for id in hubs {
        host.runtime().stop(id);
    }
}

// ----- the sink ----------------------------------------------------------------

/// Turns hub events into Lua events (see the module docs).
pub struct LuaHubSink {
    host: Weak<HostInner>,
}

impl std::fmt::Debug for LuaHubSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuaHubSink").finish_non_exhaustive()
    }
}

fn hub_value(id: HubId) -> Value {
    Value::Object { class: HUB_CLASS, id: id.0 }
}

fn text(bytes: &[u8], cs: &'static Encoding) -> Value {
    Value::str(cs.decode_without_bom_handling(bytes).0)
}

fn opt_str(s: Option<&str>) -> Value {
    s.map_or(Value::Nil, Value::str)
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A user as a Lua table's contents.
pub fn user_value(hub: HubId, u: &User) -> Value {
    let hubs = u.hubs.map_or(Value::Nil, |h| {
        Value::map([
            ("normal", int(h.normal.into())),
            ("registered", int(h.registered.into())),
            ("op", int(h.op.into())),
        ])
    });
    Value::record(
        USER_CLASS,
        [
            ("hub", hub_value(hub)),
            ("nick", Value::str(u.nick())),
            ("description", Value::str(u.description())),
            ("email", Value::str(u.email())),
            ("connection", Value::str(u.connection())),
            ("client", Value::str(u.client())),
            ("version", Value::str(u.version())),
            ("share", int(u.share)),
            ("slots", u.slots.map_or(Value::Nil, |n| int(n.into()))),
            ("free_slots", u.free_slots.map_or(Value::Nil, |n| int(n.into()))),
            ("mode", opt_str(u.mode.as_str())),
            ("hubs", hubs),
            ("op", Value::Bool(u.op)),
            ("bot", Value::Bool(u.bot)),
            ("away", Value::Bool(u.away)),
            ("ip", u.ip.map_or(Value::Nil, |ip| Value::str(ip.to_string()))),
            ("cid", u.cid_text().map_or(Value::Nil, Value::str)),
            ("sid", u.sid().map_or(Value::Nil, |s| Value::str(s.to_string()))),
            ("raw", Value::str(u.raw())),
        ],
    )
}

/// A search result as a Lua table's contents.
fn hit_value(hub: HubId, h: &SearchHit, cs: &'static Encoding) -> Value {
    Value::record(
        RESULT_CLASS,
        [
            ("hub", hub_value(hub)),
            ("nick", Value::str(&h.nick)),
            ("path", Value::str(&h.path)),
            ("name", Value::str(h.name())),
            ("size", h.size.map_or(Value::Nil, int)),
            ("tth", h.tth.map_or(Value::Nil, |t| Value::str(t.to_base32()))),
            ("is_dir", Value::Bool(h.is_dir())),
            ("free_slots", int(h.free_slots.into())),
            ("slots", int(h.slots.into())),
            ("hub_name", Value::str(&h.hub_name)),
            ("via", Value::str(h.via.as_str())),
            ("raw", text(&h.raw, cs)),
        ],
    )
}

impl LuaHubSink {
    fn host(&self) -> Option<LuaHost> {
        self.host.upgrade().map(LuaHost::from_inner)
    }

    /// Queues the internal event whose default action runs `f` once every
    /// event queued before it was dispatched.
    fn after_dispatch(host: &LuaHost, f: impl FnOnce() + 'static) {
        host.emit(Event {
            name: Rc::from(VERDICT_EVENT),
            data: Value::Nil,
            default_action: Some(Box::new(f)),
        });
    }

    fn one(&self, host: &LuaHost, hub: HubId, cs: &'static Encoding, label: &str, ev: HubEvent) {
        let h = hub_value(hub);
        let emit = |name: &str, fields: Vec<(&str, Value)>| {
            let mut pairs = vec![("hub", h.clone())];
            pairs.extend(fields);
            host.emit_value(name, Value::map(pairs));
        };
        match ev {
            HubEvent::Connected { users } => {
                emit("hub_connected", vec![("users", int(users as u64))]);
            }
            HubEvent::Disconnected { reason, reconnect_in } => {
                let done = reconnect_in.is_none();
                emit(
                    "hub_disconnected",
                    vec![
                        ("reason", Value::str(reason)),
                        (
                            "reconnect_in",
                            reconnect_in.map_or(Value::Nil, |d| Value::Num(d.as_secs_f64())),
                        ),
                    ],
                );
                if done {
                    hub_gone(host, hub);
                }
            }
            HubEvent::LoginFailed { reason, raw } => emit(
                "login_failed",
                vec![
                    ("reason", Value::str(reason)),
                    ("raw", raw.map_or(Value::Nil, |r| text(&r, cs))),
                ],
            ),
            HubEvent::Chat { nick, text: msg, me, raw } => {
                let shown = match (&nick, me) {
                    (Some(n), true) => format!("[{label}] * {n} {msg}"),
                    (Some(n), false) => format!("[{label}] <{n}> {msg}"),
                    (None, _) => format!("[{label}] {msg}"),
                };
                let data = Value::map([
                    ("hub", h),
                    ("nick", opt_str(nick.as_deref())),
                    ("text", Value::str(msg)),
                    ("me", Value::Bool(me)),
                    ("raw", text(&raw, cs)),
                ]);
                host.emit(Event {
                    name: Rc::from("chat"),
                    data,
                    default_action: show(host, shown),
                });
            }
            HubEvent::Pm { from, to, nick, text: msg, me, raw } => {
                let shown = if me {
                    format!("[{label}] PM * {from} {msg}")
                } else {
                    format!("[{label}] PM <{from}> {msg}")
                };
                let data = Value::map([
                    ("hub", h),
                    ("from", Value::str(from)),
                    ("to", Value::str(to)),
                    ("nick", opt_str(nick.as_deref())),
                    ("text", Value::str(msg)),
                    ("me", Value::Bool(me)),
                    ("raw", text(&raw, cs)),
                ]);
                host.emit(Event { name: Rc::from("pm"), data, default_action: show(host, shown) });
            }
            HubEvent::UserJoined { user } => self.user_event(host, hub, "user_joined", &user),
            HubEvent::UserUpdated { user } => self.user_event(host, hub, "user_updated", &user),
            HubEvent::UserLeft { nick } => {
                if host.has_listener("user_left") {
                    emit("user_left", vec![("nick", Value::str(nick))]);
                }
            }
            HubEvent::Search { query, from, raw } => {
                if !host.has_listener("search") {
                    return;
                }
                emit(
                    "search",
                    vec![
                        ("nick", opt_str(from.nick.as_deref())),
                        ("address", opt_str(from.address.as_deref())),
                        ("passive", Value::Bool(from.address.is_none())),
                        ("text", Value::str(query.text())),
                        ("tth", query.tth.map_or(Value::Nil, |t| Value::str(t.to_base32()))),
                        ("type", opt_str(Some(search_type_name(&query)))),
                        ("type_code", int(hub::nmdc::type_code(&query).into())),
                        ("min_size", query.min_size.map_or(Value::Nil, int)),
                        ("max_size", query.max_size.map_or(Value::Nil, int)),
                        ("raw", text(&raw, cs)),
                    ],
                );
            }
            HubEvent::SearchResult { hit } => {
                let value = hit_value(hub, &hit, cs);
                collect_result(host, hub, &hit, &value);
                if host.has_listener("search_result") {
                    host.emit_value("search_result", value);
                }
            }
            HubEvent::Redirect { url, reason, follow } => {
                let followed = Rc::new(Cell::new(false));
                let mark = followed.clone();
                let data = Value::map([
                    ("hub", h),
                    ("url", Value::str(&url)),
                    ("reason", Value::str(reason)),
                    ("follow", Value::Bool(follow)),
                ]);
                host.emit(Event {
                    name: Rc::from("hub_redirect"),
                    data,
                    default_action: Some(Box::new(move || mark.set(true))),
                });
                let rt = host.runtime().clone();
                LuaHubSink::after_dispatch(host, move || {
                    let follow = follow && followed.get();
                    rt.send(hub, HubCommand::RedirectVerdict { url, follow });
                });
            }
            HubEvent::HubInfo { name, topic } => {
                if host.has_listener("hub_info") {
                    emit(
                        "hub_info",
                        vec![("name", Value::str(name)), ("topic", Value::str(topic))],
                    );
                }
            }
            HubEvent::ConnectionRequest { nick, address, tls, reverse, raw } => {
                if host.has_listener("connection_request") {
                    emit(
                        "connection_request",
                        vec![
                            ("nick", opt_str(nick.as_deref())),
                            ("address", opt_str(address.as_deref())),
                            ("tls", Value::Bool(tls)),
                            ("reverse", Value::Bool(reverse)),
                            ("raw", text(&raw, cs)),
                        ],
                    );
                }
            }
        }
    }
}

/// The default action of `chat`/`pm`: show the line.
/// Hub text made safe for a terminal (issue 15, finding 7): each line of
/// it neutralised (no escape sequence, no stray carriage return reaches the
/// screen), continuation lines indented so that a hub cannot make its text
/// look like a line of ours.
fn terminal_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\n  ");
        }
        out.push_str(&crate::text::neutralise(line.strip_suffix('\r').unwrap_or(line)));
    }
    out
}

fn show(host: &LuaHost, line: String) -> Option<Box<dyn FnOnce()>> {
    match chat_display(host) {
        ChatDisplay::Off => None,
        ChatDisplay::Log => Some(Box::new(move || log::info!(target: "chat", "{line}"))),
        ChatDisplay::Print => {
            let line = terminal_text(&line);
            let weak = host.downgrade();
            Some(Box::new(move || {
                if let Some(h) = weak.upgrade().map(LuaHost::from_inner) {
                    h.output(&line);
                }
            }))
        }
    }
}

impl HubSink for LuaHubSink {
    fn deliver(&self, hub: HubId, events: Vec<HubEvent>) {
        let Some(host) = self.host() else { return };
        let (cs, label) = match hubs(&host).get(hub) {
            Some(info) => {
                let info = info.borrow();
                (info.charset, info.label().to_string())
            }
            None => (encoding_rs::WINDOWS_1252, String::new()),
        };
        for ev in events {
            self.one(&host, hub, cs, &label, ev);
        }
    }

    fn congested(&self) -> bool {
        self.host().is_some_and(|h| h.queue_len() > CONGESTION_LIMIT)
    }

    fn wants_raw(&self, _hub: HubId) -> bool {
        self.host().is_some_and(|h| h.has_listener("hub_raw"))
    }

    fn filter_raw(&self, hub: HubId, batch: u64, lines: Vec<Box<[u8]>>) {
        let rt_host = self.host();
        let Some(host) = rt_host else { return };
        let cs = hubs(&host).get(hub).map_or(encoding_rs::WINDOWS_1252, |i| i.borrow().charset);
        // Consumed unless the default action runs.
        let keep = Rc::new(RefCell::new(vec![false; lines.len()]));
        for (i, line) in lines.iter().enumerate() {
            let keep = keep.clone();
            host.emit(Event {
                name: Rc::from("hub_raw"),
                data: Value::map([("hub", hub_value(hub)), ("raw", text(line, cs))]),
                default_action: Some(Box::new(move || {
                    if let Some(k) = keep.borrow_mut().get_mut(i) {
                        *k = true;
                    }
                })),
            });
        }
        let rt = host.runtime().clone();
        LuaHubSink::after_dispatch(&host, move || {
            let keep = keep.take();
            rt.send(hub, HubCommand::RawVerdict { batch, keep });
        });
    }

    fn decides_redirects(&self) -> bool {
        self.host().is_some()
    }
}

impl LuaHubSink {
    fn user_event(&self, host: &LuaHost, hub: HubId, name: &str, u: &User) {
        if host.has_listener(name) {
            host.emit_value(
                name,
                Value::map([
                    ("hub", hub_value(hub)),
                    ("nick", Value::str(u.nick())),
                    ("user", user_value(hub, u)),
                    ("raw", Value::str(u.raw())),
                ]),
            );
        }
    }
}

// ----- searches ------------------------------------------------------------------

fn collect_result(host: &LuaHost, hub: HubId, hit: &SearchHit, value: &Value) {
    let done: Vec<JobId> = with_state(host, |s| {
        let mut done = Vec::new();
        for c in &mut s.searches {
            if c.hubs.contains(&hub)
                && hit.answers(&c.query)
                && c.max.is_none_or(|m| c.results.len() < m)
                && c.seen.insert((hub, hit.nick.clone(), hit.path.clone()))
            {
                c.results.push(value.clone());
                if c.max.is_some_and(|m| c.results.len() >= m) {
                    done.push(c.job);
                }
            }
        }
        done
    });
    for job in done {
        finish_search(host, job, true);
    }
}

fn lua_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The `type` of a search event: `tth` for a TTH search, else the type's name.
fn search_type_name(q: &Query) -> &'static str {
    if q.tth.is_some() {
        "tth"
    } else {
        q.file_type.name()
    }
}

/// Reads a `dc.search` table into a query, the target hubs, the timeout and
/// the result limit.
fn parse_search(opts: &Table) -> Result<(Query, Option<HubId>, Duration, Option<usize>), String> {
    for pair in opts.pairs::<mlua::Value, mlua::Value>() {
        let (k, _) = pair.map_err(lua_err)?;
        let key = match &k {
            mlua::Value::String(s) => s.to_string_lossy(),
            other => {
                return Err(format!("dc.search: unexpected key of type {}", other.type_name()))
            }
        };
        if !SEARCH_OPTIONS.contains(&key.as_str()) {
            return Err(format!(
                "dc.search: unknown option {key:?}{}",
                did_you_mean(&key, SEARCH_OPTIONS)
            ));
        }
    }
    let mut q = Query::default();
    if let Some(t) =
        opts.get::<Option<String>>("text").map_err(|e| format!("dc.search: text: {e}"))?
    {
        q.include = t.split_whitespace().map(str::to_string).collect();
    }
    if let Some(t) =
        opts.get::<Option<String>>("tth").map_err(|e| format!("dc.search: tth: {e}"))?
    {
        let tth: Tth = t
            .trim()
            .trim_start_matches("TTH:")
            .parse()
            .map_err(|_| format!("dc.search: tth {t:?} is not 39 base32 characters"))?;
        q.tth = Some(tth);
    }
    if let Some(t) =
        opts.get::<Option<String>>("type").map_err(|e| format!("dc.search: type: {e}"))?
    {
        // "tth" names what the `tth` option already says.
        q.file_type = if t.eq_ignore_ascii_case("tth") {
            FileType::Any
        } else {
            FileType::from_name(&t).ok_or_else(|| {
                let names: Vec<&str> = FileType::ALL.iter().map(|(n, _)| *n).collect();
                format!("dc.search: unknown type {t:?} (one of {}, tth)", names.join(", "))
            })?
        };
    }
    let size = |key: &str| -> Result<Option<u64>, String> {
        match opts.get::<mlua::Value>(key).map_err(lua_err)? {
            mlua::Value::Nil => Ok(None),
            mlua::Value::Integer(n) if n >= 0 => Ok(Some(n as u64)),
            mlua::Value::Number(n) if n >= 0.0 && n.fract() == 0.0 && n < 1.8e19 => {
                Ok(Some(n as u64))
            }
            other => Err(format!(
                "dc.search: {key} must be a whole number of bytes >= 0, got {}",
                other.type_name()
            )),
        }
    };
    q.size = size("size")?;
    q.min_size = size("min_size")?;
    q.max_size = size("max_size")?;
    let words = |key: &str| -> Result<Vec<String>, String> {
        match opts.get::<mlua::Value>(key).map_err(lua_err)? {
            mlua::Value::Nil => Ok(Vec::new()),
            mlua::Value::String(s) => {
                Ok(s.to_string_lossy().split_whitespace().map(str::to_string).collect())
            }
            mlua::Value::Table(t) => t
                .sequence_values::<String>()
                .map(|v| v.map_err(|e| format!("dc.search: {key}: {e}")))
                .collect(),
            other => Err(format!(
                "dc.search: {key} must be a string or a list of strings, got {}",
                other.type_name()
            )),
        }
    };
    q.exclude = words("exclude")?;
    q.extensions = words("extensions")?;
    if q.include.is_empty() && q.tth.is_none() {
        return Err("dc.search: give text = \"words\" or tth = \"...\"".into());
    }
    let hub = match opts.get::<mlua::Value>("hub").map_err(lua_err)? {
        mlua::Value::Nil => None,
        mlua::Value::Table(t) => match Value::from_lua(&mlua::Value::Table(t), "hub")? {
            Value::Object { class: HUB_CLASS, id } => Some(JobId(id)),
            _ => {
                return Err("dc.search: hub must be a dc.Hub (from dc.connect or dc.hubs())".into())
            }
        },
        _ => return Err("dc.search: hub must be a dc.Hub (from dc.connect or dc.hubs())".into()),
    };
    let timeout = match opts.get::<mlua::Value>("timeout").map_err(lua_err)? {
        mlua::Value::Nil => DEFAULT_SEARCH_TIMEOUT,
        mlua::Value::Integer(n) => n as f64,
        mlua::Value::Number(n) => n,
        other => {
            return Err(format!(
                "dc.search: timeout must be a number of seconds, got {}",
                other.type_name()
            ))
        }
    };
    if !(0.0..=MAX_SEARCH_TIMEOUT).contains(&timeout) {
        return Err(format!(
            "dc.search: timeout must be between 0 and {MAX_SEARCH_TIMEOUT} seconds"
        ));
    }
    let max = match opts.get::<mlua::Value>("max_results").map_err(lua_err)? {
        mlua::Value::Nil => None,
        mlua::Value::Integer(n) if n > 0 => Some(n as usize),
        _ => return Err("dc.search: max_results must be an integer > 0".into()),
    };
    Ok((q, hub, Duration::from_secs_f64(timeout), max))
}

/// The hub registry of a host ([`install`]ed with it).
#[derive(Default)]
struct Registry(RefCell<Hubs>);

/// The hub registry the scripts' hubs are in.
pub fn hubs(host: &LuaHost) -> Hubs {
    host.ext::<Registry>().0.borrow().clone()
}

/// Gives `host`'s scripts the hub registry `hubs` and registers
/// `dc.search`'s Rust side: an async call (`native.await("dc.search",
/// query)`) that reads its query table as given. Done once, when the host
/// is built.
pub(crate) fn install(host: &LuaHost, hubs: Hubs) {
    *host.ext::<Registry>().0.borrow_mut() = hubs;
    host.register_async_lua(
        "dc.search",
        Rc::new(|host, call, args| {
            let wait = begin_search(host, call.job, args.first())?;
            let job = call.job;
            let weak = host.downgrade();
            let rt = host.runtime();
            let timer = rt.spawn(SearchTimer { host: weak, job });
            rt.timer_after(timer, wait);
            with_state(host, |s| {
                if let Some(c) = s.searches.iter_mut().find(|c| c.job == job) {
                    c.timer = Some(timer);
                }
            });
            // A coroutine stopped while collecting takes its search along.
            host.on_abandoned(job, move |host| forget_search(host, job));
            Ok(())
        }),
    );
}

/// Starts a `dc.search` for coroutine job `job`: sends the search and
/// registers the collector. Returns how long to collect.
fn begin_search(host: &LuaHost, job: JobId, arg: Option<&mlua::Value>) -> Result<Duration, String> {
    let Some(mlua::Value::Table(opts)) = arg else {
        return Err("dc.search: expected a table {text = ..., tth = ..., timeout = ...}".into());
    };
    let (query, hub, timeout, max) = parse_search(opts)?;
    let hubs = hubs(host);
    let targets: Vec<HubId> = match hub {
        Some(id) => hubs.online().into_iter().filter(|h| *h == id).collect(),
        None => hubs.online(),
    };
    let note = if targets.is_empty() {
        Some(match hub {
            Some(_) => "the hub is not online".to_string(),
            None => "no hub is online".to_string(),
        })
    } else {
        None
    };
    // A hub already running an equal search is not asked again: its
    // answers reach every collector of that query.
    let running: Vec<HubId> = with_state(host, |s| {
        s.searches.iter().filter(|c| c.query == query).flat_map(|c| c.hubs.clone()).collect()
    });
    for &t in &targets {
        if running.contains(&t) {
            log::debug!(target: "lua", "dc.search: an equal search is running on hub {t:?}; not sent again");
            continue;
        }
        host.runtime().send(t, HubCommand::Search(query.clone()));
    }
    let wait = if targets.is_empty() { Duration::ZERO } else { timeout };
    with_state(host, |s| {
        s.searches.push(Collector {
            job,
            query,
            hubs: targets,
            results: Vec::new(),
            seen: HashSet::new(),
            max,
            note,
            timer: None,
        });
    });
    Ok(wait)
}

/// Ends job `job`'s search, if it still runs: the coroutine gets `results[,
/// note]`. `stop_timer`: its [`SearchTimer`] is not the caller.
fn finish_search(host: &LuaHost, job: JobId, stop_timer: bool) {
    let collector = with_state(host, |s| {
        let i = s.searches.iter().position(|c| c.job == job)?;
        Some(s.searches.remove(i))
    });
    let Some(c) = collector else { return };
    if let (true, Some(t)) = (stop_timer, c.timer) {
        host.runtime().stop(t);
    }
    let mut out = vec![Value::List(c.results)];
    if let Some(note) = c.note {
        out.push(Value::str(note));
    }
    host.complete(job, Ok(out));
}

/// Drops a stopped coroutine's search, if any.
fn forget_search(host: &LuaHost, job: JobId) {
    let timer = with_state(host, |s| {
        let i = s.searches.iter().position(|c| c.job == job)?;
        s.searches.remove(i).timer
    });
    if let Some(t) = timer {
        host.runtime().stop(t);
    }
}

/// Ends one `dc.search` when its time is up (its one timer fires).
struct SearchTimer {
    host: Weak<HostInner>,
    /// The searching coroutine job.
    job: JobId,
}

impl crate::runtime::Job for SearchTimer {
    fn poll(&mut self, cx: &mut crate::runtime::Context<'_>) -> crate::runtime::Step {
        use crate::runtime::Step;
        let Some(host) = self.host.upgrade().map(LuaHost::from_inner) else { return Step::Done };
        if cx.fired_timers().is_empty() {
            return Step::Pending;
        }
        finish_search(&host, self.job, false);
        Step::Done
    }

    fn is_alive(&self) -> bool {
        self.host.strong_count() > 0
    }

    fn stop(&mut self) {
        self.host = Weak::new();
    }

    fn name(&self) -> String {
        "lua dc.search timer".into()
    }
}

// ----- natives ---------------------------------------------------------------------

/// `" (did you mean \"x\"?)"` when a known name is close.
fn did_you_mean(key: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

fn hub_id(n: i64) -> HubId {
    JobId(n as u64)
}

fn connect_params(hubs: &Hubs, url: &str, opts: Option<&Table>) -> mlua::Result<HubParams> {
    let mut p = HubParams::new(url, &hubs.identity().nick);
    let Some(opts) = opts else { return Ok(p) };
    for pair in opts.pairs::<mlua::Value, mlua::Value>() {
        let (k, _) = pair?;
        let key = match &k {
            mlua::Value::String(s) => s.to_string_lossy(),
            other => {
                return Err(mlua::Error::runtime(format!(
                    "dc.connect: unexpected option key of type {}",
                    other.type_name()
                )))
            }
        };
        if !CONNECT_OPTIONS.contains(&key.as_str()) {
            return Err(mlua::Error::runtime(format!(
                "dc.connect: unknown option {key:?}{}",
                did_you_mean(&key, CONNECT_OPTIONS)
            )));
        }
    }
    let field = |e: mlua::Error, key: &str| mlua::Error::runtime(format!("dc.connect: {key}: {e}"));
    if let Some(n) = opts.get::<Option<String>>("nick").map_err(|e| field(e, "nick"))? {
        p.nick = n;
    }
    p.password = opts.get::<Option<String>>("password").map_err(|e| field(e, "password"))?;
    p.description =
        opts.get::<Option<String>>("description").map_err(|e| field(e, "description"))?;
    p.email = opts.get::<Option<String>>("email").map_err(|e| field(e, "email"))?;
    if let Some(label) = opts.get::<Option<String>>("charset").map_err(|e| field(e, "charset"))? {
        p.charset = Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
            mlua::Error::runtime(format!(
                "dc.connect: unknown charset {label:?} (cp1251, cp1252, utf-8, ...)"
            ))
        })?;
    }
    if let Some(f) =
        opts.get::<Option<bool>>("follow_redirects").map_err(|e| field(e, "follow_redirects"))?
    {
        p.follow_redirects = f;
    }
    if let Some(d) =
        opts.get::<Option<f64>>("reconnect_delay").map_err(|e| field(e, "reconnect_delay"))?
    {
        p.reconnect_delay = Duration::try_from_secs_f64(d).map_err(|_| {
            mlua::Error::runtime(format!(
                "dc.connect: reconnect_delay must be a number of seconds >= 0, got {d}"
            ))
        })?;
    }
    Ok(p)
}

/// Sends a command to a hub that must be in one of `states`; `(true)` or
/// `(false, why)`.
fn command(
    lua: &Lua,
    host: &LuaHost,
    id: HubId,
    states: &[HubState],
    cmd: HubCommand,
) -> mlua::Result<MultiValue> {
    let state = hubs(host).get(id).map(|h| h.borrow().state);
    let why = match state {
        Some(s) if states.contains(&s) && host.runtime().send(id, cmd) => {
            return Ok(MultiValue::from_vec(vec![mlua::Value::Boolean(true)]))
        }
        Some(s) => format!("the hub is {}", s.as_str()),
        None => "the hub is disconnected".to_string(),
    };
    Ok(MultiValue::from_vec(vec![
        mlua::Value::Boolean(false),
        mlua::Value::String(lua.create_string(why)?),
    ]))
}

/// A field of a hub object (`hub.name`...).
fn hub_field(lua: &Lua, host: &LuaHost, id: HubId, key: &str) -> mlua::Result<mlua::Value> {
    let Some(info) = hubs(host).get(id) else {
        let known = with_state(host, |s| s.known.get(&id).cloned());
        return Ok(match (key, known) {
            ("state", _) => mlua::Value::String(lua.create_string("disconnected")?),
            ("url", Some((url, _))) => mlua::Value::String(lua.create_string(url)?),
            ("protocol", Some((_, p))) => mlua::Value::String(lua.create_string(p)?),
            ("user_count", _) => mlua::Value::Integer(0),
            _ => mlua::Value::Nil,
        });
    };
    let info = info.borrow();
    let s = |v: &str| lua.create_string(v).map(mlua::Value::String);
    Ok(match key {
        "name" => s(&info.name)?,
        "topic" => s(&info.topic)?,
        "state" => s(info.state.as_str())?,
        "url" => s(&info.url)?,
        "protocol" => s(info.protocol.as_str())?,
        "nick" => s(&info.my_nick)?,
        "keyprint" => match &info.keyprint {
            Some(k) => s(k)?,
            None => mlua::Value::Nil,
        },
        "charset" => s(info.charset.name())?,
        "user_count" => mlua::Value::Integer(info.users.len() as i64),
        "share" => {
            mlua::Value::Integer(i64::try_from(info.users.total_share()).unwrap_or(i64::MAX))
        }
        _ => mlua::Value::Nil,
    })
}

/// Registers the hub natives and constructors in a new state.
pub(crate) fn register(
    lua: &Lua,
    host_: &LuaHost,
    script: ScriptId,
    native: &Table,
) -> mlua::Result<()> {
    macro_rules! f {
        ($key:expr, |$lua:ident, $h:ident, $args:tt: $ty:ty| $body:expr) => {{
            let weak = host_.downgrade();
            native.set(
                $key,
                lua.create_function(move |$lua, $args: $ty| {
                    let $h = weak
                        .upgrade()
                        .map(LuaHost::from_inner)
                        .ok_or_else(|| mlua::Error::runtime("dclua is shutting down"))?;
                    $body
                })?,
            )?;
        }};
    }

    native.set(
        "class",
        lua.create_function(|lua, (name, ctor): (String, mlua::Function)| {
            if !OBJECT_CLASSES.contains(&name.as_str()) && !RECORD_CLASSES.contains(&name.as_str())
            {
                return Err(mlua::Error::runtime(format!("native.class: unknown class {name:?}")));
            }
            lua.set_named_registry_value(&class_key(&name), ctor)
        })?,
    )?;
    f!("connect", |_lua, h, (url, opts): (String, Option<Table>)| {
        let params = connect_params(&hubs(&h), &url, opts.as_ref())?;
        let id = connect(&h, params, Some(script))
            .map_err(|e| mlua::Error::runtime(format!("dc.connect: {e}")))?;
        Ok(id.0 as i64)
    });
    f!("hubs", |_lua, h, (): ()| Ok(hubs(&h)
        .ids()
        .into_iter()
        .map(|id| id.0 as i64)
        .collect::<Vec<_>>()));
    f!("hub_field", |lua, h, (id, key): (i64, String)| hub_field(lua, &h, hub_id(id), &key));
    f!("hub_say", |lua, h, (id, text, me): (i64, String, bool)| {
        command(lua, &h, hub_id(id), &[HubState::Online], HubCommand::Say { text, me })
    });
    f!("hub_pm", |lua, h, (id, to, text, me): (i64, String, String, bool)| {
        // A message to nobody would vanish without a word (issue 13).
        let known = hubs(&h).get(hub_id(id)).map(|i| {
            let i = i.borrow();
            i.state != HubState::Online || i.users.contains(&to)
        });
        if known == Some(false) {
            return Ok(MultiValue::from_vec(vec![
                mlua::Value::Boolean(false),
                mlua::Value::String(lua.create_string(format!("no such user on this hub: {to}"))?),
            ]));
        }
        command(lua, &h, hub_id(id), &[HubState::Online], HubCommand::Pm { to, text, me })
    });
    f!("hub_send_raw", |lua, h, (id, line): (i64, String)| {
        command(
            lua,
            &h,
            hub_id(id),
            &[HubState::LoggingIn, HubState::Online],
            HubCommand::SendRaw(line),
        )
    });
    f!("hub_disconnect", |_lua, h, id: i64| {
        let id = hub_id(id);
        let sent = h.runtime().send(id, HubCommand::Disconnect);
        hub_gone(&h, id);
        Ok(sent)
    });
    f!("hub_users", |lua, h, id: i64| {
        let Some(info) = hubs(&h).get(hub_id(id)) else {
            return lua.create_table().map(mlua::Value::Table);
        };
        let values: Vec<Value> = {
            let info = info.borrow();
            let mut users: Vec<&User> = info.users.iter().collect();
            users.sort_by(|a, b| a.nick().cmp(b.nick()));
            users.into_iter().map(|u| user_value(hub_id(id), u)).collect()
        };
        let t = lua.create_table_with_capacity(values.len(), 0)?;
        for (i, v) in values.iter().enumerate() {
            t.raw_set(i + 1, v.to_lua(lua)?)?;
        }
        Ok(mlua::Value::Table(t))
    });
    f!("hub_user", |lua, h, (id, nick): (i64, String)| {
        let Some(info) = hubs(&h).get(hub_id(id)) else { return Ok(mlua::Value::Nil) };
        let v = {
            let info = info.borrow();
            info.users.get(&nick).map(|u| user_value(hub_id(id), u))
        };
        v.map_or(Ok(mlua::Value::Nil), |v| v.to_lua(lua))
    });
    Ok(())
}

// ----- description ---------------------------------------------------------------

/// The functions and methods of this namespace (hub objects, `dc.connect`, `dc.hubs`, `dc.search`), for [`api`](super::api)'s description.
pub const FUNCTIONS: &[ApiFn] = &[
    ApiFn {
        path: "dc.connect",
        params: &[
            ("url", "string", "the hub: dchub://host[:port], nmdc://host[:port] or host:port"),
            ("opts", "{nick?: string, password?: string, charset?: string, follow_redirects?: boolean, reconnect_delay?: number, description?: string, email?: string}?", "`nick`, `description`, `email` (default: the configured ones), `password` for a registered nick, `charset` of the hub's text (default utf-8), `follow_redirects` (default true), `reconnect_delay`: seconds before the first reconnect after a drop, doubled per failed attempt (default 30; 0 = never)"),
        ],
        returns: &[("dc.Hub", "the hub, connecting; it belongs to this script (unloading the script disconnects it)")],
        doc: "Connects to a hub. Watch `hub_connected`, `login_failed` and `hub_disconnected` for how it goes.",
        waits: false,
    },
    ApiFn {
        path: "dc.hubs",
        params: &[],
        returns: &[("dc.Hub[]", "every hub session, oldest first (configured hubs included)")],
        doc: "The hubs this client is connected or connecting to.",
        waits: false,
    },
    ApiFn {
        path: "dc.search",
        params: &[("query", "{text?: string, tth?: string, type?: string, size?: integer, min_size?: integer, max_size?: integer, exclude?: string|string[], extensions?: string|string[], hub?: dc.Hub, timeout?: number, max_results?: integer}|string", "`text` (words, all required) or `tth`; `type`: any, audio, compressed, document, executable, picture, video, folder, file (ADC only; NMDC searches any and filters), tth; sizes in bytes; `hub`: one hub (default: every online hub); `timeout`: seconds to collect (default 5); `max_results`: return as soon as this many arrived. A string is `{text = string}`")],
        returns: &[("table[]", "the results (tables as in the `search_result` event)"), ("string?", "why nothing was searched (no hub online)")],
        doc: "Searches and collects the matching results until the timeout; each is also emitted as `search_result`.",
        waits: true,
    },
    ApiFn {
        path: "dc.Hub:say",
        params: &[("text", "string", "the message"), ("opts", "{me?: boolean}?", "`me`: an action (/me)")],
        returns: &[("boolean", "whether it was sent (the hub is online)"), ("string?", "why not")],
        doc: "Says `text` in the hub's main chat.",
        waits: false,
    },
    ApiFn {
        path: "dc.Hub:pm",
        params: &[("nick", "string", "the recipient"), ("text", "string", "the message"), ("opts", "{me?: boolean}?", "`me`: an action (/me)")],
        returns: &[("boolean", "whether it was sent (the hub is online and the nick is on it)"), ("string?", "why not (\"no such user on this hub: NICK\")")],
        doc: "Sends a private message. The hub does not echo it: no `pm` event fires for your own messages.",
        waits: false,
    },
    ApiFn {
        path: "dc.Hub:users",
        params: &[],
        returns: &[("table[]", "the users, sorted by nick (fields as `user` in `user_joined`)")],
        doc: "Everyone on the hub, as known now.",
        waits: false,
    },
    ApiFn {
        path: "dc.Hub:user",
        params: &[("nick", "string", "the nick")],
        returns: &[("table?", "the user (fields as `user` in `user_joined`), or nil")],
        doc: "One user of the hub.",
        waits: false,
    },
    ApiFn {
        path: "dc.Hub:send_raw",
        params: &[("line", "string", "a protocol line (NMDC: `$Command ...`; the final `|` is added if missing), encoded in the hub's charset")],
        returns: &[("boolean", "whether it was sent (the hub is connected)"), ("string?", "why not")],
        doc: "Sends a line to the hub as it is.",
        waits: false,
    },
    ApiFn {
        path: "dc.Hub:wait",
        params: &[
            ("event", "dc.EventName|string", "the event name"),
            ("opts", "{filter?: table|(fun(e: table): boolean), timeout?: number}?", "as for `dc.wait`; only events of this hub pass"),
        ],
        returns: &[("table?", "the event table, or nil on timeout")],
        doc: "Waits for the next event `event` of this hub that passes the filter.",
        waits: true,
    },
    ApiFn {
        path: "dc.Hub:disconnect",
        params: &[],
        returns: &[],
        doc: "Leaves the hub for good (no reconnect); `hub_disconnected` follows.",
        waits: false,
    },
    ApiFn {
        path: "dc.User:pm",
        params: &[("text", "string", "the message"), ("opts", "{me?: boolean}?", "`me`: an action (/me)")],
        returns: &[("boolean", "whether it was sent"), ("string?", "why not")],
        doc: "Sends the user a private message on their hub (`user.hub:pm(user.nick, text)`).",
        waits: false,
    },
];

/// The events of this namespace.
pub const EVENTS: &[ApiEvent] = &[
    ApiEvent {
        name: "hub_connected",
        doc: "Logged in to a hub, with its initial user list.",
        fields: &[("hub", "dc.Hub", "the hub"), ("users", "integer", "users listed")],
        consumable: false,
    },
    ApiEvent {
        name: "hub_disconnected",
        doc: "A hub connection (or an attempt) ended.",
        fields: &[("hub", "dc.Hub", "the hub"), ("reason", "string", "why"), ("reconnect_in", "number?", "seconds until the next attempt; nil when the session ended for good")],
        consumable: false,
    },
    ApiEvent {
        name: "login_failed",
        doc: "A hub refused the login (wrong password, nick taken, no password set). After a wrong or missing password the session ends.",
        fields: &[("hub", "dc.Hub", "the hub"), ("reason", "string", "why"), ("raw", "string?", "the line that said so")],
        consumable: false,
    },
    ApiEvent {
        name: "chat",
        doc: "A main-chat message (yours too: hubs echo main chat). Shown in the console unless consumed.",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string?", "the sender; nil for hub text"), ("text", "string", "the message"), ("me", "boolean", "an action (/me)"), ("raw", "string", "the line")],
        consumable: true,
    },
    ApiEvent {
        name: "pm",
        doc: "A private message to you (not your own: hubs do not echo them). Shown in the console unless consumed.",
        fields: &[("hub", "dc.Hub", "the hub"), ("from", "string", "the sender"), ("to", "string", "you"), ("nick", "string?", "the nick shown inside the message (a relaying bot may show another)"), ("text", "string", "the message"), ("me", "boolean", "an action (/me)"), ("raw", "string", "the line")],
        consumable: true,
    },
    ApiEvent {
        name: "user_joined",
        doc: "A user arrived on a hub (users of the initial list at login are not reported one by one).",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string", "the nick"), ("user", "dc.User", "hub, nick, description, email, connection, client, version, share, slots, free_slots, mode (\"active\"|\"passive\"|\"socks5\"|nil), hubs {normal, registered, op}, op, bot, away, ip, cid and sid (ADC), raw (as `raw` below); methods `user:pm(text)`"), ("raw", "string", "the user's line, rebuilt from what is kept: what the hub sent, in canonical form, not byte for byte (empty for a user known only by nick)")],
        consumable: false,
    },
    ApiEvent {
        name: "user_updated",
        doc: "A user's information changed.",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string", "the nick"), ("user", "dc.User", "the user, updated (fields as in `user_joined`)"), ("raw", "string", "the user's line, rebuilt (as in `user_joined`)")],
        consumable: false,
    },
    ApiEvent {
        name: "user_left",
        doc: "A user left a hub.",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string", "the nick")],
        consumable: false,
    },
    ApiEvent {
        name: "search",
        doc: "Someone searches on a hub (your own searches are not reported).",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string?", "the searcher, for a passive search"), ("address", "string?", "ip:port where results go, for an active search"), ("passive", "boolean", "results go through the hub"), ("text", "string", "the words (empty for a TTH search)"), ("tth", "string?", "the TTH searched for"), ("type", "string", "any, audio, compressed, document, executable, picture, video, folder, file (ADC: files only) or tth"), ("type_code", "integer", "the NMDC type code of the search (1 any ... 8 folder, 9 TTH), whatever the protocol"), ("min_size", "integer?", "bytes"), ("max_size", "integer?", "bytes"), ("raw", "string", "the line")],
        consumable: false,
    },
    ApiEvent {
        name: "search_result",
        doc: "A search result arrived (by UDP or through a hub).",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string", "who has it"), ("path", "string", "the path in their share, /-separated"), ("name", "string", "the file or folder name"), ("size", "integer?", "bytes; nil for a folder"), ("tth", "string?", "the file's TTH"), ("is_dir", "boolean", "a folder"), ("free_slots", "integer", "their free slots"), ("slots", "integer", "their slots"), ("hub_name", "string", "the hub name the result gives"), ("via", "\"udp\"|\"hub\"", "how it arrived"), ("raw", "string", "the line"), ("user", "dc.User?", "the user who has it, while on the hub (looked up when read)")],
        consumable: false,
    },
    ApiEvent {
        name: "hub_raw",
        doc: "A line from a hub, before the client processes it (only while a handler or waiter exists; lines keep their order).",
        fields: &[("hub", "dc.Hub", "the hub"), ("raw", "string", "the line, without its terminator")],
        consumable: true,
    },
    ApiEvent {
        name: "hub_redirect",
        doc: "A hub redirects the client elsewhere; it is followed when `follow` is true and no handler consumes the event (consuming vetoes it).",
        fields: &[("hub", "dc.Hub", "the hub"), ("url", "string", "the new address"), ("reason", "string", "the hub's reason, if any"), ("follow", "boolean", "whether the hub's policy (follow_redirects) follows it")],
        consumable: true,
    },
    ApiEvent {
        name: "hub_info",
        doc: "A hub's name or topic changed.",
        fields: &[("hub", "dc.Hub", "the hub"), ("name", "string", "the name"), ("topic", "string", "the topic")],
        consumable: false,
    },
    ApiEvent {
        name: "connection_request",
        doc: "Someone asks for a client-client connection (transfers).",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string?", "the user, when the request names them"), ("address", "string?", "ip:port to connect to"), ("tls", "boolean", "TLS required"), ("reverse", "boolean", "a passive user asks you to send a connection request"), ("raw", "string", "the line")],
        consumable: false,
    },
];

/// Fields of hub objects (`hub.name`), read live.
pub const CLASS_FIELDS: &[ApiField] = &[
    ApiField { path: "dc.Hub.id", ty: "integer", doc: "The hub session's id." },
    ApiField {
        path: "dc.Hub.url",
        ty: "string",
        doc: "The hub's address (after a followed redirect, the new one).",
    },
    ApiField { path: "dc.Hub.protocol", ty: "\"nmdc\"|\"adc\"", doc: "The protocol." },
    ApiField {
        path: "dc.Hub.state",
        ty: "\"connecting\"|\"logging_in\"|\"online\"|\"reconnecting\"|\"disconnected\"",
        doc: "Where the session stands.",
    },
    ApiField {
        path: "dc.Hub.name",
        ty: "string",
        doc: "The hub's name (empty until the hub sends it).",
    },
    ApiField { path: "dc.Hub.topic", ty: "string", doc: "The hub's topic." },
    ApiField { path: "dc.Hub.nick", ty: "string", doc: "Your nick on this hub." },
    ApiField {
        path: "dc.Hub.keyprint",
        ty: "string?",
        doc: "The hub's TLS keyprint (TLS hubs only).",
    },
    ApiField { path: "dc.Hub.charset", ty: "string", doc: "The hub's text encoding." },
    ApiField { path: "dc.Hub.user_count", ty: "integer", doc: "Users listed." },
    ApiField { path: "dc.Hub.share", ty: "integer", doc: "Bytes shared by all users listed." },
];

#[cfg(test)]
mod tests {
    use super::terminal_text;

    #[test]
    fn hub_text_cannot_drive_the_terminal() {
        let cases: &[(&str, &str)] = &[
            ("<hub> hello", "<hub> hello"),
            ("<x> \u{1b}]0;pwned\u{7}title", "<x> \\e]0;pwned\\x07title"),
            ("<x> \u{1b}[2Jcleared", "<x> \\e[2Jcleared"),
            ("<hub> motd line 1\r\nline 2", "<hub> motd line 1\n  line 2"),
            ("<x> a\rforged", "<x> a\\rforged"),
            ("<x> Grüße привет\t✓", "<x> Grüße привет\t✓"),
        ];
        for (input, shown) in cases {
            assert_eq!(terminal_text(input), *shown, "{input:?}");
        }
    }
}
