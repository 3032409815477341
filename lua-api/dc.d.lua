---@meta dc
-- dclua's Lua API for LuaLS. Generated from src/lua/api.rs: do not edit;
-- `DCLUA_BLESS=1 cargo test --test lua_api` rewrites it.
error("cannot require a meta file")

---@alias dc.EventName
---| "script_loaded" # A script was loaded (after its main chunk started).
---| "script_unloaded" # A script was unloaded (by a script, the console, a reload, or because it ran out of memory).
---| "events_dropped" # A script had 2,000 handler calls waiting (handlers that sleep or wait), so its handlers were not called for some events; reported at most once a second per script, also in the log.
---| "config_reloaded" # The configuration file was read again and is in force.
---| "hash_progress" # Hashing progress of the share (at most two a second; the last one of a pass, files_done = files_total, always comes). The default action prints a line in the console every few seconds.
---| "share_updated" # A pass over the shared folders is over and our file list is written.
---| "download_started" # A connection started fetching a queued file (a segment, or its TTH leaves).
---| "download_progress" # A running download moved on (at most once a second per file).
---| "download_finished" # A file is complete, verified against its TTH, and in place.
---| "download_failed" # A source failed for a file (a bad block, slots full, gone, does not have it) or, with `final`, the file itself failed.
---| "queue_changed" # Items were added to, removed from or finished in the download queue.
---| "upload_started" # A user started downloading from us (one event per request: a file, our file list, a partial list, TTH leaves).
---| "upload_finished" # An upload was sent completely.
---| "upload_failed" # A request was refused (not in the share, slots full, a bad range) or an upload ended early (the peer left, too slow, the client stopping); also when a passive user asks us, passive too, for a connection.
---| "hub_connected" # Logged in to a hub, with its initial user list.
---| "hub_disconnected" # A hub connection (or an attempt) ended.
---| "login_failed" # A hub refused the login (wrong password, nick taken, no password set). After a wrong or missing password the session ends.
---| "chat" # A main-chat message (yours too: hubs echo main chat). Shown in the console unless consumed.
---| "pm" # A private message to you (not your own: hubs do not echo them). Shown in the console unless consumed.
---| "user_joined" # A user arrived on a hub (users of the initial list at login are not reported one by one).
---| "user_updated" # A user's information changed.
---| "user_left" # A user left a hub.
---| "search" # Someone searches on a hub (your own searches are not reported).
---| "search_result" # A search result arrived (by UDP or through a hub).
---| "hub_raw" # A line from a hub, before the client processes it (only while a handler or waiter exists; lines keep their order).
---| "hub_redirect" # A hub redirects the client elsewhere; it is followed when `follow` is true and no handler consumes the event (consuming vetoes it).
---| "hub_info" # A hub's name or topic changed.
---| "connection_request" # Someone asks for a client-client connection (transfers).

---A script was loaded (after its main chunk started).
---@class dc.event.script_loaded
---@field name string the script's name

---A script was unloaded (by a script, the console, a reload, or because it ran out of memory).
---@class dc.event.script_unloaded
---@field name string the script's name
---@field reason string "unloaded", or "over its memory limit"

---A script had 2,000 handler calls waiting (handlers that sleep or wait), so its handlers were not called for some events; reported at most once a second per script, also in the log.
---@class dc.event.events_dropped
---@field script string the script whose handlers were skipped
---@field count integer handler calls skipped since the last report
---@field event string the event whose call was skipped last

---The configuration file was read again and is in force.
---@class dc.event.config_reloaded
---@field path string the configuration file

---Hashing progress of the share (at most two a second; the last one of a pass, files_done = files_total, always comes). The default action prints a line in the console every few seconds.
---@class dc.event.hash_progress
---@field files_done integer files hashed (or failed) so far in this pass
---@field files_total integer files this pass hashes
---@field failed integer files that could not be hashed
---@field bytes_done integer bytes hashed so far
---@field bytes_total integer bytes this pass hashes

---A pass over the shared folders is over and our file list is written.
---@class dc.event.share_updated
---@field files integer files in the share
---@field size integer bytes in the share
---@field pending integer files not hashed (yet, or that could not be)
---@field hashed integer files this pass hashed
---@field failed integer files this pass could not hash
---@field removed integer stored files gone from the share
---@field problems integer entries the walk skipped (unreadable, dangling links)
---@field list string? our files.xml.bz2

---A connection started fetching a queued file (a segment, or its TTH leaves).
---@class dc.event.download_started
---@field id integer the item's number
---@field tth string the file's TTH
---@field size integer its size
---@field name string its file name
---@field target string where it goes
---@field state string queued, running, done, failed
---@field verified integer bytes verified
---@field received integer bytes received (with those verified before a restart)
---@field fetched integer bytes received since this start
---@field progress number verified / size
---@field running integer connections on it
---@field priority string its priority
---@field error string? the last error
---@field path string? where it went, once done
---@field sources table[] {hub, nick, user, bytes}: bytes sent by each since this start
---@field nick string the source
---@field tls boolean the connection is TLS

---A running download moved on (at most once a second per file).
---@class dc.event.download_progress
---@field id integer the item's number
---@field tth string the file's TTH
---@field size integer its size
---@field name string its file name
---@field target string where it goes
---@field state string queued, running, done, failed
---@field verified integer bytes verified
---@field received integer bytes received (with those verified before a restart)
---@field fetched integer bytes received since this start
---@field progress number verified / size
---@field running integer connections on it
---@field priority string its priority
---@field error string? the last error
---@field path string? where it went, once done
---@field sources table[] {hub, nick, user, bytes}: bytes sent by each since this start

---A file is complete, verified against its TTH, and in place.
---@class dc.event.download_finished
---@field id integer the item's number
---@field tth string the file's TTH
---@field size integer its size
---@field name string its file name
---@field target string where it goes
---@field state string queued, running, done, failed
---@field verified integer bytes verified
---@field received integer bytes received (with those verified before a restart)
---@field fetched integer bytes received since this start
---@field progress number verified / size
---@field running integer connections on it
---@field priority string its priority
---@field error string? the last error
---@field path string? where it went, once done
---@field sources table[] {hub, nick, user, bytes}: bytes sent by each since this start

---A source failed for a file (a bad block, slots full, gone, does not have it) or, with `final`, the file itself failed.
---@class dc.event.download_failed
---@field id integer the item's number
---@field tth string the file's TTH
---@field size integer its size
---@field name string its file name
---@field target string where it goes
---@field state string queued, running, done, failed
---@field verified integer bytes verified
---@field received integer bytes received (with those verified before a restart)
---@field fetched integer bytes received since this start
---@field progress number verified / size
---@field running integer connections on it
---@field priority string its priority
---@field error string? the last error
---@field path string? where it went, once done
---@field sources table[] {hub, nick, user, bytes}: bytes sent by each since this start
---@field reason string why
---@field final boolean the file failed, not only a source

---Items were added to, removed from or finished in the download queue.
---@class dc.event.queue_changed

---A user started downloading from us (one event per request: a file, our file list, a partial list, TTH leaves).
---@class dc.event.upload_started
---@field nick string the user downloading
---@field hub string the hub the connection came through
---@field cid string? the user's CID (ADC)
---@field file string the share path, files.xml.bz2, or the folder of a partial list
---@field start integer the first byte asked for
---@field bytes integer bytes asked for
---@field sent integer 0
---@field tls boolean over TLS
---@field compressed boolean sent zlib-compressed, as the user asked (ZLIG)

---An upload was sent completely.
---@class dc.event.upload_finished
---@field nick string the user downloading
---@field hub string the hub the connection came through
---@field cid string? the user's CID (ADC)
---@field file string the share path, files.xml.bz2, or the folder of a partial list
---@field start integer the first byte
---@field bytes integer bytes sent
---@field sent integer bytes sent
---@field tls boolean over TLS
---@field compressed boolean sent zlib-compressed
---@field seconds number how long it took

---A request was refused (not in the share, slots full, a bad range) or an upload ended early (the peer left, too slow, the client stopping); also when a passive user asks us, passive too, for a connection.
---@class dc.event.upload_failed
---@field nick string? the user, when known
---@field hub string? the hub, when known
---@field cid string? the user's CID (ADC)
---@field file string what was asked for (empty before any request)
---@field bytes integer bytes sent before the end
---@field seconds number how long it ran
---@field reason string why

---Logged in to a hub, with its initial user list.
---@class dc.event.hub_connected
---@field hub dc.Hub the hub
---@field users integer users listed

---A hub connection (or an attempt) ended.
---@class dc.event.hub_disconnected
---@field hub dc.Hub the hub
---@field reason string why
---@field reconnect_in number? seconds until the next attempt; nil when the session ended for good

---A hub refused the login (wrong password, nick taken, no password set). After a wrong or missing password the session ends.
---@class dc.event.login_failed
---@field hub dc.Hub the hub
---@field reason string why
---@field raw string? the line that said so

---A main-chat message (yours too: hubs echo main chat). Shown in the console unless consumed.
---@class dc.event.chat
---@field hub dc.Hub the hub
---@field nick string? the sender; nil for hub text
---@field text string the message
---@field me boolean an action (/me)
---@field raw string the line

---A private message to you (not your own: hubs do not echo them). Shown in the console unless consumed.
---@class dc.event.pm
---@field hub dc.Hub the hub
---@field from string the sender
---@field to string you
---@field nick string? the nick shown inside the message (a relaying bot may show another)
---@field text string the message
---@field me boolean an action (/me)
---@field raw string the line

---A user arrived on a hub (users of the initial list at login are not reported one by one).
---@class dc.event.user_joined
---@field hub dc.Hub the hub
---@field nick string the nick
---@field user dc.User hub, nick, description, email, connection, client, version, share, slots, free_slots, mode ("active"|"passive"|"socks5"|nil), hubs {normal, registered, op}, op, bot, away, ip, cid and sid (ADC), raw (as `raw` below); methods `user:pm(text)`
---@field raw string the user's line, rebuilt from what is kept: what the hub sent, in canonical form, not byte for byte (empty for a user known only by nick)

---A user's information changed.
---@class dc.event.user_updated
---@field hub dc.Hub the hub
---@field nick string the nick
---@field user dc.User the user, updated (fields as in `user_joined`)
---@field raw string the user's line, rebuilt (as in `user_joined`)

---A user left a hub.
---@class dc.event.user_left
---@field hub dc.Hub the hub
---@field nick string the nick

---Someone searches on a hub (your own searches are not reported).
---@class dc.event.search
---@field hub dc.Hub the hub
---@field nick string? the searcher, for a passive search
---@field address string? ip:port where results go, for an active search
---@field passive boolean results go through the hub
---@field text string the words (empty for a TTH search)
---@field tth string? the TTH searched for
---@field type string any, audio, compressed, document, executable, picture, video, folder, file (ADC: files only) or tth
---@field type_code integer the NMDC type code of the search (1 any ... 8 folder, 9 TTH), whatever the protocol
---@field min_size integer? bytes
---@field max_size integer? bytes
---@field raw string the line

---A search result arrived (by UDP or through a hub).
---@class dc.event.search_result
---@field hub dc.Hub the hub
---@field nick string who has it
---@field path string the path in their share, /-separated
---@field name string the file or folder name
---@field size integer? bytes; nil for a folder
---@field tth string? the file's TTH
---@field is_dir boolean a folder
---@field free_slots integer their free slots
---@field slots integer their slots
---@field hub_name string the hub name the result gives
---@field via "udp"|"hub" how it arrived
---@field raw string the line
---@field user dc.User? the user who has it, while on the hub (looked up when read)

---A line from a hub, before the client processes it (only while a handler or waiter exists; lines keep their order).
---@class dc.event.hub_raw
---@field hub dc.Hub the hub
---@field raw string the line, without its terminator

---A hub redirects the client elsewhere; it is followed when `follow` is true and no handler consumes the event (consuming vetoes it).
---@class dc.event.hub_redirect
---@field hub dc.Hub the hub
---@field url string the new address
---@field reason string the hub's reason, if any
---@field follow boolean whether the hub's policy (follow_redirects) follows it

---A hub's name or topic changed.
---@class dc.event.hub_info
---@field hub dc.Hub the hub
---@field name string the name
---@field topic string the topic

---Someone asks for a client-client connection (transfers).
---@class dc.event.connection_request
---@field hub dc.Hub the hub
---@field nick string? the user, when the request names them
---@field address string? ip:port to connect to
---@field tls boolean TLS required
---@field reverse boolean a passive user asks you to send a connection request
---@field raw string the line

---@class dc
---@field version string dclua's version.
---@field script string The name of the running script.
---@field args string[] Command-line arguments given to `dclua run SCRIPT ARGS...` (also the main chunk's `...`).
dc = {}

---@class dc.log
dc.log = {}

---@class dc.scripts
dc.scripts = {}

---@class dc.share
dc.share = {}

---@class dc.store
dc.store = {}

---@class dc.Command
local dc_Command = {}

---@class dc.Job
local dc_Job = {}

---@class dc.Handler
local dc_Handler = {}

---@class dc.Timer
local dc_Timer = {}

---@class dc.Hub
---@field id integer The hub session's id.
---@field url string The hub's address (after a followed redirect, the new one).
---@field protocol "nmdc"|"adc" The protocol.
---@field state "connecting"|"logging_in"|"online"|"reconnecting"|"disconnected" Where the session stands.
---@field name string The hub's name (empty until the hub sends it).
---@field topic string The hub's topic.
---@field nick string Your nick on this hub.
---@field keyprint string? The hub's TLS keyprint (TLS hubs only).
---@field charset string The hub's text encoding.
---@field user_count integer Users listed.
---@field share integer Bytes shared by all users listed.
local dc_Hub = {}

---@class dc.User
local dc_User = {}

---@class dc.Download
local dc_Download = {}

---@class dc.FileList
local dc_FileList = {}

---@class dc.SearchResult
local dc_SearchResult = {}

---Waits for `seconds` while the rest of the client runs on.
---@async
---@param seconds number how long to wait (fractions allowed)
function dc.sleep(seconds) end

---Waits for the next event `event` that passes the filter.
---@async
---@param event string the event name
---@param opts {filter?: table|(fun(e: table): boolean), timeout?: number}? `filter`: a table of fields the event must have, or a function returning true for the wanted event (it must not wait); `timeout`: seconds
---@return table? # the event table, or nil on timeout
---@overload async fun(event: "script_loaded", opts?: table): dc.event.script_loaded?
---@overload async fun(event: "script_unloaded", opts?: table): dc.event.script_unloaded?
---@overload async fun(event: "events_dropped", opts?: table): dc.event.events_dropped?
---@overload async fun(event: "config_reloaded", opts?: table): dc.event.config_reloaded?
---@overload async fun(event: "hash_progress", opts?: table): dc.event.hash_progress?
---@overload async fun(event: "share_updated", opts?: table): dc.event.share_updated?
---@overload async fun(event: "download_started", opts?: table): dc.event.download_started?
---@overload async fun(event: "download_progress", opts?: table): dc.event.download_progress?
---@overload async fun(event: "download_finished", opts?: table): dc.event.download_finished?
---@overload async fun(event: "download_failed", opts?: table): dc.event.download_failed?
---@overload async fun(event: "queue_changed", opts?: table): dc.event.queue_changed?
---@overload async fun(event: "upload_started", opts?: table): dc.event.upload_started?
---@overload async fun(event: "upload_finished", opts?: table): dc.event.upload_finished?
---@overload async fun(event: "upload_failed", opts?: table): dc.event.upload_failed?
---@overload async fun(event: "hub_connected", opts?: table): dc.event.hub_connected?
---@overload async fun(event: "hub_disconnected", opts?: table): dc.event.hub_disconnected?
---@overload async fun(event: "login_failed", opts?: table): dc.event.login_failed?
---@overload async fun(event: "chat", opts?: table): dc.event.chat?
---@overload async fun(event: "pm", opts?: table): dc.event.pm?
---@overload async fun(event: "user_joined", opts?: table): dc.event.user_joined?
---@overload async fun(event: "user_updated", opts?: table): dc.event.user_updated?
---@overload async fun(event: "user_left", opts?: table): dc.event.user_left?
---@overload async fun(event: "search", opts?: table): dc.event.search?
---@overload async fun(event: "search_result", opts?: table): dc.event.search_result?
---@overload async fun(event: "hub_raw", opts?: table): dc.event.hub_raw?
---@overload async fun(event: "hub_redirect", opts?: table): dc.event.hub_redirect?
---@overload async fun(event: "hub_info", opts?: table): dc.event.hub_info?
---@overload async fun(event: "connection_request", opts?: table): dc.event.connection_request?
function dc.wait(event, opts) end

---Waits for the first of several events that passes the filter (a PM or a chat line, whichever comes).
---@async
---@param events string[] the event names
---@param opts {filter?: table|(fun(e: table): boolean), timeout?: number}? as for `dc.wait`, applied to each event
---@return string? # the name of the event that came first, or nil on timeout
---@return table? # its table
function dc.wait_any(events, opts) end

---Runs `fn(...)` as a new coroutine job of this script.
---@param fn async fun(...): any the function to run
---@param ... any its arguments
---@return dc.Job # a handle to the new coroutine job
function dc.spawn(fn, ...) end

---Calls `handler` for every event `event`, in registration order.
---@param event dc.EventName|string the event name
---@param handler async fun(e: table): boolean? called with the event table, each call in its own coroutine; return true (before waiting) to consume the event
---@return dc.Handler # a handle to remove the handler
---@overload fun(event: "script_loaded", handler: async fun(e: dc.event.script_loaded): boolean?): dc.Handler
---@overload fun(event: "script_unloaded", handler: async fun(e: dc.event.script_unloaded): boolean?): dc.Handler
---@overload fun(event: "events_dropped", handler: async fun(e: dc.event.events_dropped): boolean?): dc.Handler
---@overload fun(event: "config_reloaded", handler: async fun(e: dc.event.config_reloaded): boolean?): dc.Handler
---@overload fun(event: "hash_progress", handler: async fun(e: dc.event.hash_progress): boolean?): dc.Handler
---@overload fun(event: "share_updated", handler: async fun(e: dc.event.share_updated): boolean?): dc.Handler
---@overload fun(event: "download_started", handler: async fun(e: dc.event.download_started): boolean?): dc.Handler
---@overload fun(event: "download_progress", handler: async fun(e: dc.event.download_progress): boolean?): dc.Handler
---@overload fun(event: "download_finished", handler: async fun(e: dc.event.download_finished): boolean?): dc.Handler
---@overload fun(event: "download_failed", handler: async fun(e: dc.event.download_failed): boolean?): dc.Handler
---@overload fun(event: "queue_changed", handler: async fun(e: dc.event.queue_changed): boolean?): dc.Handler
---@overload fun(event: "upload_started", handler: async fun(e: dc.event.upload_started): boolean?): dc.Handler
---@overload fun(event: "upload_finished", handler: async fun(e: dc.event.upload_finished): boolean?): dc.Handler
---@overload fun(event: "upload_failed", handler: async fun(e: dc.event.upload_failed): boolean?): dc.Handler
---@overload fun(event: "hub_connected", handler: async fun(e: dc.event.hub_connected): boolean?): dc.Handler
---@overload fun(event: "hub_disconnected", handler: async fun(e: dc.event.hub_disconnected): boolean?): dc.Handler
---@overload fun(event: "login_failed", handler: async fun(e: dc.event.login_failed): boolean?): dc.Handler
---@overload fun(event: "chat", handler: async fun(e: dc.event.chat): boolean?): dc.Handler
---@overload fun(event: "pm", handler: async fun(e: dc.event.pm): boolean?): dc.Handler
---@overload fun(event: "user_joined", handler: async fun(e: dc.event.user_joined): boolean?): dc.Handler
---@overload fun(event: "user_updated", handler: async fun(e: dc.event.user_updated): boolean?): dc.Handler
---@overload fun(event: "user_left", handler: async fun(e: dc.event.user_left): boolean?): dc.Handler
---@overload fun(event: "search", handler: async fun(e: dc.event.search): boolean?): dc.Handler
---@overload fun(event: "search_result", handler: async fun(e: dc.event.search_result): boolean?): dc.Handler
---@overload fun(event: "hub_raw", handler: async fun(e: dc.event.hub_raw): boolean?): dc.Handler
---@overload fun(event: "hub_redirect", handler: async fun(e: dc.event.hub_redirect): boolean?): dc.Handler
---@overload fun(event: "hub_info", handler: async fun(e: dc.event.hub_info): boolean?): dc.Handler
---@overload fun(event: "connection_request", handler: async fun(e: dc.event.connection_request): boolean?): dc.Handler
function dc.on(event, handler) end

---Emits an event of your own; handlers (of every script) see it on the next pass.
---@param event string the event name
---@param data table? the event table (plain data only)
function dc.emit(event, data) end

---Calls `fn` once, after `seconds`, in its own coroutine.
---@param seconds number delay
---@param fn async fun() the callback
---@return dc.Timer # a handle to stop the timer
function dc.after(seconds, fn) end

---Calls `fn` every `seconds`, each call in its own coroutine. A tick that comes while the previous call still runs (it waits) is skipped. The timer stops if `fn` fails.
---@param seconds number period
---@param fn async fun() the callback
---@return dc.Timer # a handle to stop the timer
function dc.every(seconds, fn) end

---Routes chat and private messages that start with `name` to `fn`, each call in its own coroutine. The answer goes back where the command came from: a private message to its sender, else main chat. The first command also adds `<prefix>help` (`!help`), which lists the commands with their help, unless the script has its own. The client's own messages are never commands.
---@param name string the command word, as in `"!seen"`
---@param fn async fun(args: table, e: table): string? called with the words after the command (`args[1]`, ..., `args.text` the whole rest) and the chat or pm event; a string it returns is the answer
---@param opts {help: string?}? `help`: one line for the list of commands
---@return dc.Command # a handle; `:remove()` removes the command
function dc.command(name, fn, opts) end

---Removes the command.
function dc_Command:remove() end

---Stops the client cleanly.
---@param code integer? exit code (default 0)
function dc.quit(code) end

---Reads the configuration file again and applies the differences: scripts and hubs no longer listed are unloaded and left, new ones loaded and joined, the identity and settings applied.
---@return boolean # true when the new configuration is in force
---@return string? # the error otherwise (the last good configuration stays)
function dc.reload_config() end

---Logs at debug level, tagged with the script's name.
---@param ... any values, joined with spaces
function dc.log.debug(...) end

---Logs at info level, tagged with the script's name.
---@param ... any values, joined with spaces
function dc.log.info(...) end

---Logs a warning, tagged with the script's name.
---@param ... any values, joined with spaces
function dc.log.warn(...) end

---Logs an error, tagged with the script's name.
---@param ... any values, joined with spaces
function dc.log.error(...) end

---Loads a script and runs its main chunk.
---@param path string the script file
---@param opts {trusted?: boolean}? `trusted`: full standard library (io, os, package)
---@return string? # the script's name
---@return string? # the error
function dc.scripts.load(path, opts) end

---Unloads a script: stops everything it created (handlers, timers, jobs).
---@param name string the script's name
---@return boolean # whether it was loaded
function dc.scripts.unload(name) end

---Ends the calling script: once the current call returns or waits, it is unloaded (its handlers, timers, coroutines and hubs go with it; `script_unloaded` says "ended itself"). A script ends by itself when it owns nothing alive; this ends it sooner. Under `dclua run`, the client ends with it.
function dc.scripts.exit() end

---Unloads a script and loads its file again; nothing of the old load fires afterwards.
---@param name string the script's name
---@return boolean # success
---@return string? # the error (the old version keeps running)
function dc.scripts.reload(name) end

---The loaded scripts, in load order.
---@return string[] # names of the loaded scripts
function dc.scripts.list() end

---Whether the job is still running.
---@return boolean # whether it still runs
function dc_Job:alive() end

---Stops the job (its `:wait()` then gives `false, "stopped"`).
function dc_Job:stop() end

---Waits until the job ends; gives `true, results...` or `false, error`.
---@async
---@return boolean # true if the function returned, false if it failed
---@return any # its results, or the error message
function dc_Job:wait() end

---Removes the event handler.
function dc_Handler:remove() end

---Stops the timer; its callback is not called again.
function dc_Timer:stop() end

---Whether the timer is still armed.
---@return boolean # whether it will fire again
function dc_Timer:active() end

---Connects to a hub. Watch `hub_connected`, `login_failed` and `hub_disconnected` for how it goes.
---@param url string the hub: dchub://host[:port], nmdc://host[:port] or host:port
---@param opts {nick?: string, password?: string, charset?: string, follow_redirects?: boolean, reconnect_delay?: number, description?: string, email?: string}? `nick`, `description`, `email` (default: the configured ones), `password` for a registered nick, `charset` of the hub's text (default utf-8), `follow_redirects` (default true), `reconnect_delay`: seconds before the first reconnect after a drop, doubled per failed attempt (default 30; 0 = never)
---@return dc.Hub # the hub, connecting; it belongs to this script (unloading the script disconnects it)
function dc.connect(url, opts) end

---The hubs this client is connected or connecting to.
---@return dc.Hub[] # every hub session, oldest first (configured hubs included)
function dc.hubs() end

---Searches and collects the matching results until the timeout; each is also emitted as `search_result`.
---@async
---@param query {text?: string, tth?: string, type?: string, size?: integer, min_size?: integer, max_size?: integer, exclude?: string|string[], extensions?: string|string[], hub?: dc.Hub, timeout?: number, max_results?: integer}|string `text` (words, all required) or `tth`; `type`: any, audio, compressed, document, executable, picture, video, folder, file (ADC only; NMDC searches any and filters), tth; sizes in bytes; `hub`: one hub (default: every online hub); `timeout`: seconds to collect (default 5); `max_results`: return as soon as this many arrived. A string is `{text = string}`
---@return table[] # the results (tables as in the `search_result` event)
---@return string? # why nothing was searched (no hub online)
function dc.search(query) end

---Says `text` in the hub's main chat.
---@param text string the message
---@param opts {me?: boolean}? `me`: an action (/me)
---@return boolean # whether it was sent (the hub is online)
---@return string? # why not
function dc_Hub:say(text, opts) end

---Sends a private message. The hub does not echo it: no `pm` event fires for your own messages.
---@param nick string the recipient
---@param text string the message
---@param opts {me?: boolean}? `me`: an action (/me)
---@return boolean # whether it was sent (the hub is online and the nick is on it)
---@return string? # why not ("no such user on this hub: NICK")
function dc_Hub:pm(nick, text, opts) end

---Everyone on the hub, as known now.
---@return table[] # the users, sorted by nick (fields as `user` in `user_joined`)
function dc_Hub:users() end

---One user of the hub.
---@param nick string the nick
---@return table? # the user (fields as `user` in `user_joined`), or nil
function dc_Hub:user(nick) end

---Sends a line to the hub as it is.
---@param line string a protocol line (NMDC: `$Command ...`; the final `|` is added if missing), encoded in the hub's charset
---@return boolean # whether it was sent (the hub is connected)
---@return string? # why not
function dc_Hub:send_raw(line) end

---Waits for the next event `event` of this hub that passes the filter.
---@async
---@param event dc.EventName|string the event name
---@param opts {filter?: table|(fun(e: table): boolean), timeout?: number}? as for `dc.wait`; only events of this hub pass
---@return table? # the event table, or nil on timeout
function dc_Hub:wait(event, opts) end

---Leaves the hub for good (no reconnect); `hub_disconnected` follows.
function dc_Hub:disconnect() end

---Sends the user a private message on their hub (`user.hub:pm(user.nick, text)`).
---@param text string the message
---@param opts {me?: boolean}? `me`: an action (/me)
---@return boolean # whether it was sent
---@return string? # why not
function dc_User:pm(text, opts) end

---Shares a folder for this session (the configuration file keeps the permanent ones). Raises when the folder is missing or the name is taken.
---@async
---@param path string the folder on disk
---@param name string the name others see (unique, case-insensitively)
---@param hidden boolean? share hidden files and folders too (default false)
---@return boolean # true once the folder is in the share (its files are then scanned and hashed; `share_updated` tells when)
function dc.share.add(path, name, hidden) end

---Stops sharing a folder: its files are no longer answered at once and leave the file list with the pass that follows.
---@param name string the share name
---@return boolean # whether such a folder was shared
function dc.share.remove(name) end

---Walks the shared folders again in the background: new and changed files are hashed, gone ones leave the share (`share_updated` tells when it is over).
function dc.share.rescan() end

---The share's totals.
---@return {files: integer, size: integer, pending: integer, hashed: integer, hashed_bytes: integer, hashing: boolean, progress: table, roots: {name: string, path: string, hidden: boolean}[]} # files and bytes shared, files waiting for their hash, files and bytes hashed since the start, whether hashing runs and its progress, the shared folders
function dc.share.stats() end

---Searches our own share, as others' searches are answered (without the answer filter).
---@param query {text?: string, tth?: string, type?: string|integer, min_size?: integer, max_size?: integer, size?: integer, max?: integer} `text`: words that must all occur in the path; `tth`: a TTH (then the rest is ignored); `type`: any, audio, compressed, document, executable, picture, video, folder, file (or an NMDC type 1-8); sizes in bytes, inclusive; `max`: most results (default 100)
---@return {path: string, size: integer, tth: string?, dir: boolean}[] # the matching files and folders, in share order
function dc.share.find(query) end

---Sets this script's filter on answers to other users' searches; an error in it answers nothing.
---@param fn (fun(query: table, hits: table[]): (boolean|table|nil))? called with each incoming search that has hits, outside any coroutine (it must not wait); returns false to answer nothing, a list of hits (or paths) to answer only those, anything else to answer all; nil removes this script's filter
function dc.share.filter(fn) end

---Hashes a file on the helper threads and returns its Tiger tree root; raises when it cannot be read.
---@async
---@param path string a file
---@return string # its TTH (39 base32 characters)
function dc.tth(path) end

---Saves a value of this script under `name`, atomically, in the data folder (`store/<script>/<name>.lua`); it survives restarts.
---@param name string 1 to 64 letters, digits, `_`, `-`, `.`
---@param value table|string|number|boolean|nil plain data; nil removes the name
---@return true # saved (an error says why not)
function dc.store.save(name, value) end

---Reads back a value this script saved.
---@param name string the name saved under
---@return any # the value saved, or nil when there is none
function dc.store.load(name) end

---The names in this script's store.
---@return string[] # the names this script has saved, sorted
function dc.store.list() end

---The client's data folder (trusted scripts and the console).
---@return string? # the data folder, nil when the client has none
function dc.data_dir() end

---Queues a file: it is fetched from its sources (several at once for a large file), every block checked against the TTH leaves, and moved into place under a name that never replaces an existing file. The queue survives restarts.
---@param file {tth: string, size: integer, name?: string, dir?: string, priority?: string, sources?: table[], hub?: dc.Hub|string, nick?: string, cid?: string, source?: table} what to download: a search result, a file of a browsed list, or a table with `tth`, `size`, `name` and `sources` (users: tables with `hub` and `nick`, or `cid` on ADC)
---@param opts {dir?: string, name?: string, priority?: string}? `dir`: a folder below the download folder (an absolute folder needs a trusted script); `name`: another file name; `priority`: paused, lowest, low, normal (default), high, highest
---@return dc.Download # the queued item's handle (an item already queued with that TTH gains the sources)
function dc.download(file, opts) end

---Waits until the download is complete and verified.
---@async
---@return string? # where the verified file is
---@return string? # why it failed or was cancelled
function dc_Download:wait() end

---Where the download stands.
---@return {id: integer, tth: string, size: integer, name: string, target: string, state: string, verified: integer, received: integer, fetched: integer, progress: number, running: integer, priority: string, error: string?, path: string?, sources: {hub: string, nick: string, user: string, bytes: integer}[]}? # the item now (as in `dc.queue()`), nil when unknown
function dc_Download:progress() end

---Removes the item from the queue with its temporary file; a waiting `wait` returns nil and the reason.
---@return boolean # whether it was in the queue
---@return string? # why not
function dc_Download:cancel() end

---The download queue.
---@return {id: integer, tth: string, size: integer, name: string, target: string, state: string, verified: integer, received: integer, fetched: integer, progress: number, running: integer, priority: string, error: string?, path: string?, sources: {hub: string, nick: string, user: string, bytes: integer}[]}[] # queued items, then those finished since start; each has `handle`, its dc.Download
function dc.queue() end

---Reads a magnet link, and queues it when `opts` are given.
---@param uri string magnet:?xt=urn:tree:tiger:TTH&xl=SIZE&dn=NAME
---@param opts {sources?: table[], dir?: string, priority?: string}? when given, the file is queued (as `dc.download`)
---@return table|dc.Download # without `opts`: {tth, size, name}; with: the queued download
function dc.magnet(uri, opts) end

---The magnet link of a shared file, for others to queue.
---@param path string a file of the share, as its path in our list (`/Share/sub/file.ext`)
---@return string? # magnet:?xt=urn:tree:tiger:TTH&xl=SIZE&dn=NAME
---@return string? # why not (not shared, not hashed yet)
function dc.share.magnet(path) end

---Downloads and reads a user's file list (bounded: a bomb or a list that is not XML fails with the reason).
---@async
---@param user table a user: a search result, a `user_joined` user, or {hub = hub, nick = ...}
---@param opts {dir?: string}? `dir`: a partial list of that folder only
---@return dc.FileList # the list's root folder
function dc.browse(user, opts) end

---The subfolders (`for d in list:dirs() do print(d.name) end`). A folder has the fields `name`, `path`, `size`, `file_count`, `incomplete`, `nick`.
---@return fun(): dc.FileList? # an iterator over the subfolders
function dc_FileList:dirs() end

---The files in this folder and below.
---@param recursive boolean? false: this folder only (default: everything below)
---@return fun(): table? # an iterator over files {name, path, size, tth, source}, each with `:download(opts)`
function dc_FileList:files(recursive) end

---A subfolder.
---@param path string a folder path, relative to this folder or absolute (`/share/sub`), case-insensitive
---@return dc.FileList? # the folder, or nil
function dc_FileList:dir(path) end

---Searches the list as the hub search would.
---@param words string words that must all occur in the path
---@param max integer? results at most (default 100)
---@return table[] # files below this folder, as from `files()`
function dc_FileList:find(words, max) end

---Queues every file of this folder and below, keeping the folder structure.
---@param opts {dir?: string, priority?: string}? `dir`: where the folder goes (default: its name, in the download folder)
---@return dc.Download[] # the queued files
function dc_FileList:download(opts) end

---Queues the file of a search result (`dc.download(result, opts)`); a folder result is an error.
---@param opts {dir?: string, name?: string, priority?: string}? as for `dc.download`
---@return dc.Download # the queued file
function dc_SearchResult:download(opts) end

---Browses the share of the user who answered (`dc.browse(result, opts)`).
---@async
---@param opts {dir?: string}? as for `dc.browse`
---@return dc.FileList # the list of the user who has it
function dc_SearchResult:browse(opts) end

---Sets this script's upload slot policy; an error in it means the usual rules. The first script whose policy says true or false decides.
---@param fn (fun(ask: {nick: string, hub: string, cid: string?, file: string, size: integer, free: boolean}): boolean?)? called for each request that needs a normal upload slot (files over 64 KiB), outside any coroutine (it must not wait); `free` says whether a slot is free; returns true to grant a slot beyond the count, false to refuse ("slots full"), nil for the usual rules; nil removes this script's policy
function dc.share.slot_policy(fn) end

---The uploads running now.
---@return {nick: string, hub: string, cid: string?, file: string, start: integer, bytes: integer, sent: integer, tls: boolean, compressed: boolean, seconds: number}[] # the uploads running now: the user, the file (share path, files.xml.bz2 or a list folder), the range asked for, bytes sent so far (uncompressed), whether over TLS and zlib-compressed, seconds since the start
function dc.uploads() end

