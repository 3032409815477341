---@meta dc
-- dclua's Lua API for LuaLS. Generated from src/lua/api.rs: do not edit;
-- `DCLUA_BLESS=1 cargo test --test lua_api` rewrites it.
error("cannot require a meta file")

---@alias dc.EventName
---| "script_loaded" # A script was loaded (after its main chunk started).
---| "script_unloaded" # A script was unloaded.
---| "config_reloaded" # The configuration file was read again and is in force.

---A script was loaded (after its main chunk started).
---@class dc.event.script_loaded
---@field name string the script's name

---A script was unloaded.
---@class dc.event.script_unloaded
---@field name string the script's name

---The configuration file was read again and is in force.
---@class dc.event.config_reloaded
---@field path string the configuration file

---@class dc
---@field version string dclua's version.
---@field script string The name of the running script.
---@field args string[] Command-line arguments given to `dclua run SCRIPT ARGS...` (also the main chunk's `...`).
dc = {}

---@class dc.log
dc.log = {}

---@class dc.scripts
dc.scripts = {}

---@class dc.Job
local dc_Job = {}

---@class dc.Handler
local dc_Handler = {}

---@class dc.Timer
local dc_Timer = {}

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
---@overload async fun(event: "config_reloaded", opts?: table): dc.event.config_reloaded?
function dc.wait(event, opts) end

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
---@overload fun(event: "config_reloaded", handler: async fun(e: dc.event.config_reloaded): boolean?): dc.Handler
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

---Calls `fn` every `seconds`, each call in its own coroutine. The timer stops if `fn` fails.
---@param seconds number period
---@param fn async fun() the callback
---@return dc.Timer # a handle to stop the timer
function dc.every(seconds, fn) end

---Stops the client cleanly.
---@param code integer? exit code (default 0)
function dc.quit(code) end

---Reads the configuration file again.
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

