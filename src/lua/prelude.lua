-- The Lua half of dclua's scripting host, run once in every Lua state.
--
-- Waiting functions are thin Lua wrappers that yield a request, tagged with the
-- private sentinel REQ, to the pool, which resumes the coroutine with the reply
-- on a later pass: no Rust frame is ever yielded across. coroutine.resume and
-- coroutine.wrap are replaced so that such requests pass through a script's own
-- coroutines (as OpenResty does); otherwise a bot using coroutines would
-- swallow them.
--
-- Arguments: REQ and IDLE sentinels (light userdata: no allocation when they
-- cross to Rust), KINDS, the request kinds as the host numbers them
-- ({SLEEP = n, ...}, from the Rust enum `Request`), the `dc` table, and
-- `native`, the Rust primitives the wrappers are built on. Returns the runner
-- function of reused coroutines.
local REQ, IDLE, KINDS, dc, native = ...

local yield, isyieldable = coroutine.yield, coroutine.isyieldable
-- co_resume records the coroutine it runs as the innermost running state,
-- where the host's watchdog arms its hook (see src/lua/watchdog.rs).
local co_create, co_resume = coroutine.create, native.co_resume
local error, type, tostring, setmetatable = error, type, tostring, setmetatable

-- Yields a host request and returns its reply; raises the host's error.
-- The reply is `true, values...` or `false, message`.
local function finish(ok, ...)
  if ok then
    return ...
  end
  error((...), 3)
end

-- Request kinds, as the host numbers them (integers cross to Rust without
-- allocating anything).
local SLEEP, WAIT, JOIN, ASYNC = KINDS.SLEEP, KINDS.WAIT, KINDS.JOIN, KINDS.ASYNC
local NAMES = { [SLEEP] = "dc.sleep", [WAIT] = "dc.wait", [JOIN] = "job:wait" }

local function request(kind, ...)
  if not isyieldable() then
    error((NAMES[kind] or (...)) .. " waits, so it must run in a coroutine job (a script's main chunk,"
      .. " an event handler, a timer callback, a dc.spawn function or a console line),"
      .. " not here (e.g. a table.sort comparator or a string.gsub callback)", 3)
  end
  return finish(yield(REQ, kind, ...))
end

-- The hottest request, written out in full (no varargs, no extra call).
function dc.sleep(seconds)
  -- 0 (integer or float) is the one value equal to 0: it needs no type
  -- check (`type` makes a string), and it is the commonest (a yield).
  if seconds ~= 0 and (type(seconds) ~= "number" or seconds ~= seconds or seconds < 0) then
    error("dc.sleep: expected a number of seconds >= 0, got " .. tostring(seconds), 2)
  end
  if not isyieldable() then
    request(SLEEP) -- raises the explanation
  end
  local ok, err = yield(REQ, SLEEP, seconds)
  if not ok then
    error(err, 2)
  end
end

-- help(): the API description, in every state (console, scripts).
local G = _G
function help(what)
  if what == nil then return native.help() end
  if type(what) == "function" then
    for _, path in ipairs(native.help_paths()) do
      local v = G
      for part in path:gmatch("[^%.]+") do v = type(v) == "table" and v[part] or nil end
      if v == what then return native.help(path) end
    end
    return "help: this function is not part of the dc API"
  end
  if type(what) ~= "string" then
    error("help: expected a name (\"dc.search\", \"hub:say\", \"chat\") or a dc function, got "
      .. type(what), 2)
  end
  return native.help(what) or ("help: nothing is called " .. what .. "; help() lists everything")
end

-- The options of dc.wait and dc.wait_any: the filter and the timeout, or an
-- error (at the caller's caller, level 3) naming `api`.
local function wait_options(api, opts)
  if opts == nil then return nil, nil end
  if type(opts) ~= "table" then
    error(api .. ": options must be a table {filter = ..., timeout = ...}", 3)
  end
  for k in pairs(opts) do
    if k ~= "filter" and k ~= "timeout" then
      error(api .. ": unknown option " .. tostring(k)
        .. native.did_you_mean(tostring(k), "filter", "timeout")
        .. "; the options are filter and timeout", 3)
    end
  end
  local filter, timeout = opts.filter, opts.timeout
  if filter ~= nil and type(filter) ~= "table" and type(filter) ~= "function" then
    error(api .. ": filter must be a table of fields or a function", 3)
  end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error(api .. ": timeout must be a number of seconds >= 0", 3)
  end
  return filter, timeout
end

function dc.wait(event, opts)
  if type(event) ~= "string" then
    error("dc.wait: expected an event name, got " .. type(event), 2)
  end
  native.check_event_name(event, "dc.wait")
  local filter, timeout = wait_options("dc.wait", opts)
  return request(WAIT, event, filter, timeout)
end

function dc.wait_any(events, opts)
  if type(events) ~= "table" or #events == 0 then
    error("dc.wait_any: expected a list of event names, as in {\"chat\", \"pm\"}", 2)
  end
  for i, name in ipairs(events) do
    if type(name) ~= "string" then
      error("dc.wait_any: event " .. i .. " is a " .. type(name) .. ", not a name", 2)
    end
    native.check_event_name(name, "dc.wait_any")
  end
  local filter, timeout = wait_options("dc.wait_any", opts)
  return request(WAIT, events, filter, timeout)
end

-- Handles -------------------------------------------------------------------

local Job = {}
Job.__index = Job
Job.__name = "dc.Job"
function Job:alive() return native.job_alive(self.id) end
function Job:stop() native.job_stop(self.id) end
function Job:wait()
  if native.job_alive(self.id) then
    request(JOIN, self.id)
  end
  return native.job_result(self.id)
end
Job.__gc = function(self) native.job_forget(self.id) end
Job.__tostring = function(self) return "dc.Job#" .. tostring(self.id) end

function dc.spawn(f, ...)
  if type(f) ~= "function" then
    error("dc.spawn: expected a function, got " .. type(f), 2)
  end
  return setmetatable({ id = native.spawn(f, ...) }, Job)
end

local Handler = {}
Handler.__index = Handler
Handler.__name = "dc.Handler"
function Handler:remove() native.handler_remove(self.id) end
Handler.__tostring = function(self) return "dc.Handler#" .. tostring(self.id) end

function dc.on(event, fn)
  if type(event) ~= "string" then
    error("dc.on: expected an event name, got " .. type(event), 2)
  end
  if type(fn) ~= "function" then
    error("dc.on: expected a handler function, got " .. type(fn), 2)
  end
  -- A name close to a built-in event is most likely a typo ("chats"); it
  -- may still be a custom event of dc.emit, so it is a warning, not an error.
  native.check_event_name(event)
  return setmetatable({ id = native.on(event, fn), event = event }, Handler)
end

local Timer = {}
Timer.__index = Timer
Timer.__name = "dc.Timer"
function Timer:stop() native.timer_stop(self.id) end
function Timer:active() return native.timer_active(self.id) end
Timer.__tostring = function(self) return "dc.Timer#" .. tostring(self.id) end

local function timer(name, seconds, fn, repeating)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error(name .. ": expected a number of seconds >= 0, got " .. tostring(seconds), 3)
  end
  if type(fn) ~= "function" then
    error(name .. ": expected a function, got " .. type(fn), 3)
  end
  return setmetatable({ id = native.timer(seconds, fn, repeating) }, Timer)
end

function dc.after(seconds, fn) return timer("dc.after", seconds, fn, false) end
function dc.every(seconds, fn) return timer("dc.every", seconds, fn, true) end

-- Coroutines that pass host requests through ---------------------------------

local function forward(co, ok, first, ...)
  if ok and first == REQ then
    -- The user's coroutine asked the host for something: pass the request up
    -- to the pool (through any number of nested coroutines) and feed the
    -- reply back down.
    if not isyieldable() then
      return false, "dc: a waiting call inside this coroutine cannot reach the host:"
        .. " the code resuming it is not a coroutine job"
    end
    return forward(co, co_resume(co, yield(REQ, ...)))
  end
  if not ok and native.exhausted() then
    error(first, 0) -- the budget error is not the caller's to catch
  end
  return ok, first, ...
end

function coroutine.resume(co, ...)
  if type(co) ~= "thread" then
    error("bad argument #1 to 'resume' (coroutine expected)", 2)
  end
  return forward(co, co_resume(co, ...))
end

function coroutine.wrap(f)
  local co = co_create(f)
  local function unwrap(ok, ...)
    if ok then
      return ...
    end
    error((...), 2)
  end
  return function(...)
    return unwrap(coroutine.resume(co, ...))
  end
end

-- A runaway loop must not escape its time budget (or Ctrl-C) by catching the
-- error: once interrupted, pcall and xpcall re-raise.
local raw_pcall, raw_xpcall = pcall, xpcall
local function recheck(ok, ...)
  if not ok and native.exhausted() then
    error((...), 0)
  end
  return ok, ...
end
function pcall(f, ...) return recheck(raw_pcall(f, ...)) end
function xpcall(f, h, ...) return recheck(raw_xpcall(f, h, ...)) end

-- Waiting calls served by Rust features (search, hashing...): `native.await
-- (name, args...)` yields an ASYNC request that the host hands to the handler
-- registered under `name`; its answer is the reply. Extension chunks (see
-- `api::EXTENSIONS`) build their waiting functions on it.
function native.await(name, ...)
  return request(ASYNC, name, ...)
end

-- Reused coroutines: one runner serves many handler calls and timer callbacks.
-- It yields IDLE with the results when a call completes; the host then keeps
-- it for the next call.
local function runner(f, a)
  while true do
    f, a = yield(IDLE, f(a))
  end
end

-- Hubs ----------------------------------------------------------------------
--
-- A dc.Hub is a table {id = <session job id>}. Its metatable (one per hub,
-- named "dc.Hub") has as __index a table of its methods, whose own __index
-- reads the other fields (name, topic, state, url, protocol, nick, keyprint,
-- charset, user_count, share) live from the hub registry. One object per hub
-- and state (a weak cache), so `e.hub == myhub` holds; event tables get theirs
-- from the constructor registered with native.class.

local getmetatable, rawget, pairs = getmetatable, rawget, pairs
local hub_methods = {}
local hub_cache = setmetatable({}, { __mode = "v" })

local function hub_newindex(_, key)
  error("dc.Hub: field '" .. tostring(key) .. "' is read-only", 2)
end

local function hub_tostring(self)
  return "dc.Hub(" .. tostring(native.hub_field(rawget(self, "id"), "url")) .. ")"
end

local function hub_object(id)
  local h = hub_cache[id]
  if h == nil then
    local methods = setmetatable({}, {
      __index = function(_, key) return native.hub_field(id, key) end,
    })
    for k, f in pairs(hub_methods) do
      methods[k] = f
    end
    h = setmetatable({ id = id }, {
      __name = "dc.Hub",
      __index = methods,
      __newindex = hub_newindex,
      __tostring = hub_tostring,
    })
    hub_cache[id] = h
  end
  return h
end
native.class("dc.Hub", hub_object)

local function hub_id(self, method)
  local mt = type(self) == "table" and getmetatable(self)
  if not mt or mt.__name ~= "dc.Hub" then
    error("dc.Hub:" .. method .. ": call it on a hub, with ':' (hub:" .. method .. "(...))", 3)
  end
  return rawget(self, "id")
end

local function check_string(method, what, v)
  if type(v) ~= "string" then
    error("dc.Hub:" .. method .. ": expected " .. what .. " (a string), got " .. type(v), 3)
  end
end

local function action(opts)
  return type(opts) == "table" and opts.me == true
end

function hub_methods:say(text, opts)
  local id = hub_id(self, "say")
  check_string("say", "the text", text)
  return native.hub_say(id, text, action(opts))
end

function hub_methods:pm(nick, text, opts)
  local id = hub_id(self, "pm")
  check_string("pm", "a nick", nick)
  check_string("pm", "the text", text)
  return native.hub_pm(id, nick, text, action(opts))
end

function hub_methods:users()
  return native.hub_users(hub_id(self, "users"))
end

function hub_methods:user(nick)
  local id = hub_id(self, "user")
  check_string("user", "a nick", nick)
  return native.hub_user(id, nick)
end

function hub_methods:send_raw(line)
  local id = hub_id(self, "send_raw")
  check_string("send_raw", "a protocol line", line)
  return native.hub_send_raw(id, line)
end

function hub_methods:disconnect()
  native.hub_disconnect(hub_id(self, "disconnect"))
end

local dc_wait = dc.wait
function hub_methods:wait(event, opts)
  hub_id(self, "wait")
  if type(event) ~= "string" then
    error("dc.Hub:wait: expected an event name, got " .. type(event), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("dc.Hub:wait: options must be a table {filter = ..., timeout = ...}", 2)
  end
  local want = opts and opts.filter
  local filter
  if want == nil then
    filter = function(e) return e.hub == self end
  elseif type(want) == "function" then
    filter = function(e) return e.hub == self and want(e) end
  elseif type(want) == "table" then
    filter = function(e)
      if e.hub ~= self then
        return false
      end
      for k, v in pairs(want) do
        if e[k] ~= v then
          return false
        end
      end
      return true
    end
  else
    error("dc.Hub:wait: filter must be a table of fields or a function", 2)
  end
  return dc_wait(event, { filter = filter, timeout = opts and opts.timeout })
end

-- Commands ------------------------------------------------------------------

-- This state's chat commands: word -> {fn, help}, in registration order in
-- `command_order`. The chat and pm handlers are registered with the first
-- command, and a "<prefix>help" listing them unless the script has its own.
local commands, command_order = nil, {}

local Command = {}
Command.__index = Command
Command.__name = "dc.Command"
function Command:remove()
  if commands and commands[self.name] then
    commands[self.name] = nil
    for i, n in ipairs(command_order) do
      if n == self.name then table.remove(command_order, i) break end
    end
  end
end
Command.__tostring = function(self) return "dc.Command " .. self.name end

-- Answers where the command came from: a PM back to its sender, main chat
-- otherwise; printed for an event without a hub (one emitted by a test).
local function command_reply(e, text)
  if not e.hub then
    print(text)
  elseif e.from then
    e.hub:pm(e.from, text)
  else
    e.hub:say(text)
  end
end

local function command_dispatch(e)
  if type(e.text) ~= "string" then return end
  -- Our own chat comes back from the hub: never a command to us.
  if e.hub and (e.nick or e.from) == e.hub.nick then return end
  local word, rest = e.text:match("^(%S+)%s*(.-)%s*$")
  local c = word and commands[word]
  if not c then return end
  local args = { text = rest }
  for a in rest:gmatch("%S+") do args[#args + 1] = a end
  local out = c.fn(args, e)
  if type(out) == "string" and out ~= "" then command_reply(e, out) end
end

local function command_help()
  return function()
    -- In registration order, the automatic help last.
    local lines, last = {}, nil
    for _, name in ipairs(command_order) do
      local c = commands[name]
      local line = c.help and (name .. " - " .. c.help) or name
      if c.auto then last = line else lines[#lines + 1] = line end
    end
    lines[#lines + 1] = last
    return "Commands: " .. table.concat(lines, "; ")
  end
end

function dc.command(name, fn, opts)
  if type(name) ~= "string" or not name:match("^%S+$") then
    error("dc.command: expected a command word without spaces, as in \"!seen\"", 2)
  end
  if type(fn) ~= "function" then
    error("dc.command: expected a function(args, event), got " .. type(fn), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("dc.command: options must be a table {help = ...}", 2)
  end
  for k in pairs(opts or {}) do
    if k ~= "help" then
      error("dc.command: unknown option " .. tostring(k)
        .. native.did_you_mean(tostring(k), "help") .. "; the option is help", 2)
    end
  end
  local help = opts and opts.help
  if help ~= nil and type(help) ~= "string" then
    error("dc.command: help must be a string", 2)
  end
  if not commands then
    commands = {}
    dc.on("chat", command_dispatch)
    dc.on("pm", command_dispatch)
  end
  if not commands[name] then command_order[#command_order + 1] = name end
  commands[name] = { fn = fn, help = help }
  -- The list of commands, under the first command's prefix character.
  local help_name = name:sub(1, 1) .. "help"
  if help_name ~= name and not commands[help_name] then
    commands[help_name] = { fn = command_help(), help = "this list", auto = true }
    command_order[#command_order + 1] = help_name
  end
  return setmetatable({ name = name }, Command)
end

function dc.connect(url, opts)
  if type(url) ~= "string" then
    error("dc.connect: expected a hub address (dchub://host:port), got " .. type(url), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("dc.connect: options must be a table {nick = ..., password = ..., ...}", 2)
  end
  return hub_object(native.connect(url, opts))
end

function dc.hubs()
  local ids, out = native.hubs(), {}
  for i = 1, #ids do
    out[i] = hub_object(ids[i])
  end
  return out
end

-- dc.User: a user record (fields as in `user_joined`, with `hub`) and its
-- methods; records get their metatable in each state from native.class.
local user_methods = {}
local user_mt = { __name = "dc.User", __index = user_methods }
native.classes["dc.User"] = user_methods
native.class("dc.User", function(t) return setmetatable(t, user_mt) end)

function user_methods:pm(text, opts)
  if type(self) ~= "table" or getmetatable(self) ~= user_mt then
    error("dc.User:pm: call it on a user, with ':' (user:pm(text))", 2)
  end
  local hub = rawget(self, "hub")
  if hub == nil then return false, "the user's hub is unknown" end
  return hub:pm(rawget(self, "nick"), text, opts)
end

function dc.search(q)
  if type(q) == "string" then
    q = { text = q }
  end
  if type(q) ~= "table" then
    error("dc.search: expected a table {text = ..., tth = ..., timeout = ...}", 2)
  end
  return native.await("dc.search", q)
end

return runner
