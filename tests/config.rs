//! Tests of the configuration script: valid files parse into the expected
//! `Config`, every kind of mistake gives its exact message (golden files in
//! `tests/golden/config_errors/`), the sandbox holds, and the default file
//! covers every setting.
//!
//! Golden files: each `NAME.lua` is loaded as `config.lua` and must fail with
//! exactly the text of `NAME.expected`. After a deliberate change of
//! messages, `DCLUA_BLESS=1 cargo test --test config` rewrites the expected
//! files; review the diff before committing.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use dclua::config::settings::{Kind, SETTINGS};
use dclua::config::{
    self, Config, ConfigError, HubConfig, LogLevel, Mode, ScriptConfig, ShareConfig,
    DEFAULT_CONFIG_LUA,
};

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_lua_source("config.lua", text)
}

fn error_of(text: &str) -> String {
    match load(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// Runs `text` on another thread so that a script the budget fails to stop
/// makes the test fail instead of hanging the run.
fn load_with_watchdog(text: &'static str) -> Result<Config, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load(text).map_err(|e| e.to_string()));
    });
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("the configuration script was not stopped: {text}"))
}

#[test]
fn a_full_configuration_parses_into_the_struct() {
    let text = r#"
        local music = "/srv/music"
        nick = "me"
        description = "music, " .. "mostly"
        email = "me@example.org"
        data_dir = "/var/lib/dclua"
        download_dir = "/srv/downloads"
        shares = {
          music,
          { path = "/srv/films", name = "Films", hidden = true },
        }
        hubs = {
          { url = "adcs://hub.example.org:1511", password = "secret" },
          { url = "dchub://nmdc.example.org", nick = "me_ru", charset = "cp1251", autoconnect = false },
          "adc://[::1]:1511",
        }
        reconnect_delay = 0
        slots = 4.0
        download_slots = 2
        upload_limit = 512
        download_limit = 2048
        segment_size = 4
        mode = "active"
        listen_address = "::"
        external_address = "dc.example.org"
        tcp_port = 4000
        udp_port = 4000
        tls_port = 4001
        scripts = { "/opt/bots/greeter.lua", { path = "/opt/bots/logger.lua", trusted = true } }
        log_level = "debug"
        log_file = "/var/log/dclua.log"
        history_size = 50
    "#;
    let config = load(text).unwrap_or_else(|e| panic!("{e}"));
    let expected = Config {
        nick: "me".into(),
        description: "music, mostly".into(),
        email: "me@example.org".into(),
        data_dir: Some("/var/lib/dclua".into()),
        download_dir: Some("/srv/downloads".into()),
        shares: vec![
            ShareConfig {
                path: "/srv/music".into(),
                name: "music".into(),
                hidden: false,
                follow_symlinks: false,
            },
            ShareConfig {
                path: "/srv/films".into(),
                name: "Films".into(),
                hidden: true,
                follow_symlinks: false,
            },
        ],
        hubs: vec![
            HubConfig {
                url: "adcs://hub.example.org:1511".into(),
                nick: None,
                password: Some("secret".into()),
                charset: None,
                description: None,
                email: None,
                autoconnect: true,
            },
            HubConfig {
                url: "dchub://nmdc.example.org".into(),
                nick: Some("me_ru".into()),
                password: None,
                charset: Some("windows-1251".into()),
                description: None,
                email: None,
                autoconnect: false,
            },
            HubConfig {
                url: "adc://[::1]:1511".into(),
                nick: None,
                password: None,
                charset: None,
                description: None,
                email: None,
                autoconnect: true,
            },
        ],
        reconnect_delay: 0,
        max_users: 2_000_000,
        slots: 4,
        mini_slots: 3,
        download_slots: 2,
        upload_limit: 512,
        download_limit: 2048,
        segment_size: 4,
        mode: Mode::Active,
        listen_address: "::".parse().expect("address"),
        external_address: Some("dc.example.org".into()),
        tcp_port: 4000,
        udp_port: 4000,
        tls_port: 4001,
        tls_transfers: true,
        scripts: vec![
            ScriptConfig { path: "/opt/bots/greeter.lua".into(), trusted: false },
            ScriptConfig { path: "/opt/bots/logger.lua".into(), trusted: true },
        ],
        log_level: LogLevel::Debug,
        log_file: Some("/var/log/dclua.log".into()),
        history_size: 50,
    };
    assert_eq!(config, expected);
    assert_eq!(config.autoconnect_hubs().count(), 2);
    assert_eq!(config.log_level.to_level_filter(), log::LevelFilter::Debug);
}

#[test]
fn unset_settings_take_their_defaults() {
    let config = load("nick = 'me'\nslots = nil\n").unwrap_or_else(|e| panic!("{e}"));
    let default = Config::embedded_default();
    assert_eq!(config, Config { nick: "me".into(), ..default.clone() });
    assert_eq!(default.nick, "dclua-user");
    assert_eq!(default.slots, 3);
    assert_eq!(default.mode, Mode::Passive);
    assert_eq!(default.listen_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(default.log_level, LogLevel::Info);
    assert!(default.hubs.is_empty() && default.shares.is_empty() && default.scripts.is_empty());
    assert_eq!((default.data_dir, default.download_dir, default.log_file), (None, None, None));
}

#[test]
fn the_returned_table_style_works_and_mixes_with_globals() {
    let text = "slots = 5\nreturn { nick = 'me', hubs = { 'dchub://h.example.org' } }\n";
    let config = load(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((config.nick.as_str(), config.slots, config.hubs.len()), ("me", 5, 1));
}

#[test]
fn lua_features_and_indirect_assignments_are_seen() {
    let text = r#"
        local names = {}
        for i = 1, 3 do names[#names + 1] = "dchub://hub" .. i .. ".example.org" end
        hubs = names
        _G.nick = "via_G"
        rawset(_ENV, "slots", 7)
        local function set_mode() mode = "active" end
        set_mode()
        description = string.format("%d hubs", #hubs)
        email = nil
    "#;
    let config = load(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.hubs.len(), 3);
    assert_eq!(config.hubs[2].url, "dchub://hub3.example.org");
    assert_eq!(config.nick, "via_G");
    assert_eq!(config.slots, 7);
    assert_eq!(config.mode, Mode::Active);
    assert_eq!(config.description, "3 hubs");
}

#[test]
fn relative_paths_are_relative_to_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.lua");
    std::fs::write(
        &path,
        "data_dir = 'state'\nshares = { 'music', { path = '/abs/films' } }\nscripts = { 'bots/a.lua' }\nlog_file = 'log/x.log'\ndownload_dir = '~/dl'\n",
    )
    .expect("write");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.data_dir, Some(dir.path().join("state")));
    assert_eq!(config.shares[0].path, dir.path().join("music"));
    assert_eq!(config.shares[0].name, "music");
    assert_eq!(config.shares[1].path, PathBuf::from("/abs/films"));
    assert_eq!(config.scripts[0].path, dir.path().join("bots/a.lua"));
    assert_eq!(config.log_file, Some(dir.path().join("log/x.log")));
    if let Some(home) = dirs::home_dir() {
        assert_eq!(config.download_dir, Some(home.join("dl")));
    }
}

#[test]
fn every_path_setting_is_resolved() {
    // Built from the settings table, so a new path setting is covered too.
    let mut text = String::new();
    let mut expected = Vec::new();
    for setting in SETTINGS {
        match setting.kind {
            Kind::Path => {
                text.push_str(&format!("{} = 'rel_{}'\n", setting.name, setting.name));
                expected.push(format!("rel_{}", setting.name));
            }
            Kind::List(record) => {
                let mut item = String::new();
                for field in record.fields {
                    if let Kind::Path = field.kind {
                        item.push_str(&format!(
                            "{} = 'rel_{}_{}', ",
                            field.name, setting.name, field.name
                        ));
                        expected.push(format!("rel_{}_{}", setting.name, field.name));
                    } else if record.shorthand == Some(field.name) {
                        let value = match field.kind {
                            Kind::HubUrl => "'dchub://h.example.org'",
                            _ => "'x'",
                        };
                        item.push_str(&format!("{} = {value}, ", field.name));
                    }
                }
                text.push_str(&format!("{} = {{ {{ {item} }} }}\n", setting.name));
            }
            _ => {}
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.lua");
    std::fs::write(&path, &text).expect("write");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let json = serde_json::to_string(&config).expect("serializes");
    assert!(expected.len() >= 5, "{expected:?}");
    for name in expected {
        let resolved = dir.path().join(&name);
        let resolved = serde_json::to_string(&resolved).expect("path");
        assert!(json.contains(&resolved), "{name} was not resolved: {json}");
    }
}

#[test]
fn golden_error_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/config_errors");
    let bless = std::env::var_os("DCLUA_BLESS").is_some();
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("golden folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "lua"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 20, "only {} golden scripts", scripts.len());
    let mut failures = Vec::new();
    for script in &scripts {
        let text = std::fs::read_to_string(script).expect("script");
        let expected_path = script.with_extension("expected");
        let got = match load(&text) {
            Ok(config) => format!("(no error: {config:?})"),
            Err(e) => e.to_string(),
        };
        if bless {
            std::fs::write(&expected_path, format!("{got}\n")).expect("bless");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no .expected file", script.display()));
        if got != expected.trim_end_matches('\n') {
            failures.push(format!(
                "{}:\n  expected: {}\n  got:      {}",
                script.display(),
                expected.trim_end(),
                got
            ));
        }
    }
    // An .expected without its script is a leftover.
    for entry in std::fs::read_dir(&dir).expect("golden folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "expected") {
            assert!(path.with_extension("lua").exists(), "{} has no script", path.display());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_examples_of_the_issue_read_as_promised() {
    assert_eq!(
        error_of("nick = 'me'\n\n\n\n\n\nnikc = 'me'\n"),
        "config.lua:7: unknown setting \"nikc\" (did you mean \"nick\"?)"
    );
    let hubs = "\n\n\n\n\n\n\n\nhubs = {\n  { url = 'adc://a.example.org:1' },\n  { url = 'adc://b.example.org:1',\n    pasword = 'x' },\n}\n";
    assert_eq!(
        error_of(hubs),
        "config.lua:12: hubs[2]: unknown field \"pasword\" (did you mean \"password\"?)"
    );
    assert_eq!(
        error_of("\n\nslots = 'three'\n"),
        "config.lua:3: slots: expected an integer from 1 to 1000, got string \"three\""
    );
}

#[test]
fn endless_loops_are_stopped() {
    for text in [
        "while true do end",
        "local function f() return f() end\nf()",
        "coroutine.wrap(function() while true do end end)()",
        "while true do pcall(function() while true do end end) end",
        "while true do xpcall(function() while true do end end, function(m) return m end) end",
        "local co = coroutine.create(function() while true do end end)\nwhile true do coroutine.resume(co) end",
        "load('while true do end')()",
    ] {
        let err = load_with_watchdog(text).err().unwrap_or_else(|| panic!("{text} succeeded"));
        assert!(err.starts_with("config.lua:"), "{err}");
        assert!(err.ends_with("Lua instructions (an endless loop?)"), "{text}: {err}");
    }
}

#[test]
fn memory_is_limited() {
    let err =
        load_with_watchdog("local t = {}\nfor i = 1, 1e9 do t[i] = i end").expect_err("fails");
    assert_eq!(
        err,
        format!(
            "config.lua: the script needs more than {} MiB of memory",
            config::MEMORY_LIMIT >> 20
        )
    );
}

#[test]
fn the_sandbox_has_no_files_processes_or_bytecode() {
    let cases = [
        ("os.execute('true')", "os.execute is not available in the configuration sandbox"),
        ("os.remove('/tmp/x')", "os.remove is not available"),
        ("os.exit(1)", "os.exit is not available"),
        ("io.open('/etc/passwd')", "undefined variable \"io\" (io is not available"),
        ("dofile('/etc/passwd')", "undefined variable \"dofile\""),
        ("loadfile('/etc/passwd')", "undefined variable \"loadfile\""),
        ("require('os')", "undefined variable \"require\""),
        ("package.loadlib('x', 'y')", "undefined variable \"package\""),
        ("debug.sethook()", "undefined variable \"debug\""),
        ("string.dump(print)", "attempt to call a nil value (field 'dump')"),
        ("collectgarbage('stop')", "undefined variable \"collectgarbage\""),
        ("setmetatable(os, nil)", "cannot change a protected metatable"),
        ("setmetatable(_ENV, nil)", "cannot change a protected metatable"),
    ];
    for (code, message) in cases {
        let err = error_of(code);
        assert!(err.starts_with("config.lua:1: "), "{code}: {err}");
        assert!(err.contains(message), "{code}: {err}");
    }
    // load() takes text only: a binary chunk is refused, inside and outside.
    let err = error_of("local f, err = load('\\27Lua...')\nerror(err)");
    assert!(err.contains("attempt to load a binary chunk"), "{err}");
    let err = Config::from_lua_source("config.lua", "\x1bLuaT\0\x19\u{93}").expect_err("refused");
    assert!(err.to_string().contains("attempt to load a binary chunk"), "{err}");
    // What remains works.
    let config = load("nick = os.getenv('DCLUA_TEST_SURELY_UNSET') or ('x'):rep(3) .. math.floor(2.5) .. os.date('!%Y', 0)")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.nick, "xxx21970");
    // A loaded chunk's globals are settings too.
    let config = load("load('slots = 9')()").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.slots, 9);
}

#[test]
fn long_file_names_keep_their_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("a-rather-long-folder-name-to-make-lua-shorten-the-chunk-name");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let path = folder.join("config.lua");
    std::fs::write(&path, "nick = 'me'\nlocal x = nil + 1\n").expect("write");
    let err = Config::load(&path).expect_err("fails");
    assert_eq!(
        err.to_string(),
        format!("{}:2: attempt to perform arithmetic on a nil value", path.display())
    );
    std::fs::write(&path, "nick = 'me'\n\nslots = -1\n").expect("write");
    let err = Config::load(&path).expect_err("fails");
    assert_eq!(
        err.to_string(),
        format!("{}:3: slots: expected an integer from 1 to 1000, got -1", path.display())
    );
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.lua");
    let err = Config::load(&missing).expect_err("fails");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err
        .to_string()
        .starts_with(&format!("cannot read the configuration file {}: ", missing.display())));
    let big = dir.path().join("big.lua");
    let file = std::fs::File::create(&big).expect("create");
    file.set_len(config::MAX_FILE_SIZE + 1).expect("grow");
    assert!(matches!(Config::load(&big), Err(ConfigError::TooLarge { .. })));
}

#[test]
fn the_embedded_default_loads_and_mentions_every_setting() {
    let config = Config::embedded_default();
    assert_eq!(load("").unwrap_or_else(|e| panic!("{e}")), config);
    for setting in SETTINGS {
        let line = format!("\n-- {} = ", setting.name);
        assert!(
            DEFAULT_CONFIG_LUA.contains(&line),
            "the default file does not show {}",
            setting.name
        );
        if let Kind::List(record) = setting.kind {
            for field in record.fields {
                let text = format!("--   {} ", field.name);
                assert!(
                    DEFAULT_CONFIG_LUA.contains(&text),
                    "the default file does not describe {}.{}",
                    setting.name,
                    field.name
                );
            }
        }
    }
    // Uncommenting every example in the default file gives a valid configuration.
    let uncommented: String = DEFAULT_CONFIG_LUA
        .lines()
        .filter_map(|l| l.strip_prefix("-- "))
        .filter(|l| !l.starts_with(' ') || l.starts_with("  \"") || l.starts_with("  {"))
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            SETTINGS.iter().any(|s| s.name == first) || first == "}" || l.starts_with("  ")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(uncommented.contains("hubs = {\n  { url = \"adcs://"), "{uncommented}");
    let examples = Config::from_lua_source("examples.lua", &uncommented)
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(examples.hubs.len(), 2);
    assert_eq!(examples.shares.len(), 2);
    assert_eq!(examples.scripts.len(), 2);
}

#[test]
fn init_writes_the_default_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new/folder/config.lua");
    let written = config::init(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(written, path);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), DEFAULT_CONFIG_LUA);
    assert_eq!(Config::load(&path).unwrap_or_else(|e| panic!("{e}")), Config::embedded_default());
    std::fs::write(&path, "nick = 'mine'\n").expect("write");
    let err = config::init(&path).expect_err("refuses");
    assert!(matches!(err, ConfigError::Exists { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "nick = 'mine'\n");
}

#[test]
fn help_explains_settings() {
    let help = config::help("mode").expect("mode has help");
    assert!(help.starts_with("mode (active | passive; default \"passive\")"), "{help}");
    assert!(config::help("hubs").expect("hubs").contains("Example: hubs = {"));
    assert!(config::help("nikc").is_none());
    assert!(config::help_topics().contains(&"scripts.trusted".to_string()));
}

#[test]
fn errors_list_their_problems() {
    let err = load("slots = 0\nnick = ''\n").expect_err("fails");
    let lines: Vec<Option<usize>> = err.problems().iter().map(|p| p.line).collect();
    assert_eq!(lines, [Some(1), Some(2)]);
    assert_eq!(err.to_string().lines().count(), 2);
}

#[test]
fn every_help_topic_has_a_header_and_a_text() {
    // `cargo test --test config help -- --nocapture` shows them all for review.
    for topic in config::help_topics() {
        let text = config::help(&topic).expect("help for every topic");
        assert!(text.lines().count() >= 2, "{topic}: {text}");
        println!("{text}\n");
    }
}
