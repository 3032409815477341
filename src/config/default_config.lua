-- dclua configuration.
--
-- This file is a Lua 5.4 script. Each setting is a global assignment:
--
--     nick = "me"
--     slots = 4
--
-- Every setting is listed below, commented out, with its default value:
-- remove the "-- " in front of a line to change it. Settings you leave out
-- keep their default. Helper variables must be local (any other global is
-- taken for a setting, and an unknown setting is an error):
--
--     local music = "/srv/music"
--     shares = { music .. "/rock", music .. "/jazz" }
--
-- A script may also end with `return { nick = "me", ... }` instead.
-- Relative paths are relative to this file's folder; "~" is your home folder.
-- The script runs in a sandbox: no files, no processes; `os.getenv` works,
-- and `print` writes to the log. In the console, help("slots") explains a
-- setting, and help("hubs.charset") a field of a hub.
--
-- Trust, in one place: this file only sets settings (it has no `dc`, it
-- starts nothing). The scripts it lists run untrusted unless marked
-- `trusted = true` below: untrusted scripts keep to their own hubs, handlers,
-- timers, searches, downloads and store, with no files or processes and
-- limits on memory and time. The console (`dclua`, `dclua attach`) and
-- `dclua run SCRIPT` are trusted: they may do whatever you may.

------------------------------------------------------------------ identity

-- Your nick on hubs (a hub entry may set its own).
-- nick = "dclua-user"

-- A short description other users see.
-- description = ""

-- An e-mail address other users see (leave empty to show none).
-- email = ""

------------------------------------------------------------------- folders

-- Folder for the hash store, the queue, the console history and logs.
-- Default: the XDG data folder, ~/.local/share/dclua. The --data-dir flag
-- overrides this setting.
-- data_dir = "~/.local/share/dclua"

-- Folder where finished downloads are put. Default: <data_dir>/downloads.
-- download_dir = "~/Downloads/dclua"

------------------------------------------------------------------- sharing

-- Shared folders: a list of paths, or of tables with these fields:
--   path    the folder to share (required)
--   name    the name other users see (default: the folder's own name)
--   hidden  also share hidden files and folders (default: false)
--   follow_symlinks follow symbolic links in the folder (default: false).
--           Off, a link is skipped whatever it points to; on, a link may
--           lead outside the folder (what it points to is shared too), but
--           never into the data folder, which is never shared.
-- shares = {}
-- For example:
-- shares = {
--   "~/Music",
--   { path = "/srv/films", name = "Films", hidden = false, follow_symlinks = true },
-- }

---------------------------------------------------------------------- hubs

-- Hubs: a list of addresses, or of tables with these fields:
--   url          adc://host:port, adcs://host:port (ADC over TLS),
--                dchub://host[:port], nmdc://host[:port] or nmdcs:// (required)
--   nick         your nick on this hub (default: the global nick)
--   password     password for a registered nick (default: none)
--   charset      text encoding of an NMDC hub: utf-8, cp1251, cp1252, ...
--                (default: utf-8; ADC hubs always use UTF-8)
--   description  your description on this hub (default: the global one)
--   email        your e-mail on this hub (default: the global one)
--   autoconnect  connect when dclua starts (default: true)
-- hubs = {}
-- For example:
-- hubs = {
--   { url = "adcs://hub.example.org:1511", nick = "me", password = "secret" },
--   { url = "dchub://nmdc.example.org:411", charset = "cp1251", autoconnect = false },
-- }

-- Seconds to wait before reconnecting to a hub that dropped us; 0 = never reconnect.
-- reconnect_delay = 30

-- Users kept per hub at most; past it a hub's further users are not kept (the
-- log says so once).
-- max_users = 2000000

----------------------------------------------------------------- transfers

-- Upload slots: how many users may download from you at the same time (1 to 1000).
-- slots = 3

-- Extra upload slots for file lists, TTH leaves and files up to 64 KiB, so that
-- browsing never waits for a full slot (0 to 100).
-- mini_slots = 3

-- How many files may download at the same time; 0 = no limit.
-- download_slots = 0

-- Upload speed limit in KiB/s; 0 = no limit.
-- upload_limit = 0

-- Download speed limit in KiB/s; 0 = no limit.
-- download_limit = 0

-- Smallest piece of a file asked of one source, in MiB; pieces grow to about
-- 20 s of a source's speed (up to 256 MiB).
-- segment_size = 1

------------------------------------------------------------------- network

-- "active" if other users can connect to your ports, "passive" behind a NAT
-- or firewall you cannot open.
-- mode = "passive"

-- Local IP address to listen on for other users ("::" for IPv6 too).
-- listen_address = "0.0.0.0"

-- Address announced to others in active mode, when behind a forwarded NAT
-- port. Default: the address the hub sees.
-- external_address = "dc.example.org"

-- TCP port for client connections in active mode; 0 = any free port.
-- Forward it on your router if you are behind one.
-- tcp_port = 0

-- UDP port for search results in active mode; 0 = any free port.
-- udp_port = 0

-- TCP port for encrypted (TLS) client connections in active mode; 0 = any
-- free port. It must differ from tcp_port.
-- tls_port = 0

-- Encrypted (TLS) client connections: the TLS port in active mode, and TLS
-- when a user asks for it; false: plain connections only.
-- tls_transfers = true

------------------------------------------------------------------- scripts

-- Lua scripts to load at start: a list of paths, or of tables with these fields:
--   path     the script (required)
--   trusted  give it the full standard library, io and os included: only for
--            scripts you wrote or read (default: false)
-- scripts = {}
-- For example:
-- scripts = {
--   "scripts/greeter.lua",
--   { path = "~/dclua/logger.lua", trusted = true },
-- }

------------------------------------------------------------ log and console

-- How much to log: "off", "error", "warn", "info", "debug" or "trace".
-- log_level = "info"

-- Also append the log to this file (rotated past 10 MiB, three old files
-- kept). Default: standard error only.
-- log_file = "~/.local/share/dclua/dclua.log"

-- How many console lines to keep in the history file; 0 = keep no history.
-- history_size = 1000
