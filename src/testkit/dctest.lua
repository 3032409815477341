-- The Lua side of the bot test kit: `dctest` and `expect`, installed in the
-- test file's (trusted) state only. Called with the `dctest` table, the
-- native functions of src/testkit/lua.rs, the state's `native.await` and
-- `dc`. Bots under test never see any of this.

local dctest, N, await, dc = ...

local fmt = string.format

-- Values ---------------------------------------------------------------------

-- A short, stable text for a value: strings quoted, tables with sorted keys,
-- nested to a depth, cycles marked.
local function repr(v, depth, seen)
  depth = depth or 3
  seen = seen or {}
  local t = type(v)
  if t == "string" then return fmt("%q", v) end
  if t ~= "table" then return tostring(v) end
  if seen[v] then return "<cycle>" end
  if depth == 0 then return "{...}" end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  local parts, n = {}, #v
  for _, k in ipairs(keys) do
    local val = repr(v[k], depth - 1, seen)
    if math.type(k) == "integer" and k >= 1 and k <= n then
      parts[#parts + 1] = val
    elseif type(k) == "string" and k:match("^[%a_][%w_]*$") then
      parts[#parts + 1] = k .. " = " .. val
    else
      parts[#parts + 1] = "[" .. repr(k, 1) .. "] = " .. val
    end
  end
  seen[v] = nil
  return "{" .. table.concat(parts, ", ") .. "}"
end
dctest.repr = repr

local function key_path(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return "." .. k end
  return "[" .. repr(k, 1) .. "]"
end

-- The path of the first difference between two values (nil when equal), and
-- the two values there. Tables are compared by content, keys in sorted order.
local function first_diff(a, b, path, seen)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a == b then return nil end
    return path, a, b
  end
  if a == b then return nil end
  seen = seen or {}
  if seen[a] == b then return nil end
  seen[a] = b
  local keys, have = {}, {}
  for k in pairs(a) do if not have[k] then have[k] = true; keys[#keys + 1] = k end end
  for k in pairs(b) do if not have[k] then have[k] = true; keys[#keys + 1] = k end end
  table.sort(keys, function(x, y)
    local tx, ty = type(x), type(y)
    if tx ~= ty then return tx < ty end
    if tx == "number" or tx == "string" then return x < y end
    return tostring(x) < tostring(y)
  end)
  for _, k in ipairs(keys) do
    local p, x, y = first_diff(a[k], b[k], path .. key_path(k), seen)
    if p then return p, x, y end
  end
  return nil
end

-- Assertions -----------------------------------------------------------------

local function fail(msg)
  -- Level 3: the test's line (fail <- the matcher <- the test).
  error(msg, 3)
end

--- expect(actual).to_equal(expected) and friends; a failure names the
--- test's file and line, the expectation and the actual value.
function expect(actual)
  local e = {}
  function e.to_equal(expected)
    local path, x, y = first_diff(actual, expected, "")
    if path == nil then return actual end
    local msg = fmt("expected %s\n     got %s", repr(expected), repr(actual))
    if path ~= "" then
      msg = msg .. fmt("\n  first difference at %s: expected %s, got %s", path, repr(y, 2), repr(x, 2))
    end
    fail(msg)
  end
  function e.to_be(expected)
    if actual ~= expected then fail(fmt("expected %s (the same value)\n     got %s", repr(expected), repr(actual))) end
    return actual
  end
  function e.to_be_truthy()
    if not actual then fail(fmt("expected a true value, got %s", repr(actual))) end
    return actual
  end
  function e.to_be_falsy()
    if actual then fail(fmt("expected false or nil, got %s", repr(actual))) end
    return actual
  end
  function e.to_be_nil()
    if actual ~= nil then fail(fmt("expected nil, got %s", repr(actual))) end
  end
  function e.to_match(pattern)
    if type(actual) ~= "string" or not actual:find(pattern) then
      fail(fmt("expected a string matching %s, got %s", repr(pattern), repr(actual)))
    end
    return actual
  end
  function e.to_contain(value)
    if type(actual) == "string" then
      if not actual:find(value, 1, true) then
        fail(fmt("expected a string containing %s, got %s", repr(value), repr(actual)))
      end
      return actual
    end
    if type(actual) ~= "table" then fail(fmt("expected a table containing %s, got %s", repr(value), repr(actual))) end
    for _, v in pairs(actual) do
      if first_diff(v, value, "") == nil then return actual end
    end
    fail(fmt("expected a table containing %s, got %s", repr(value), repr(actual)))
  end
  function e.to_be_at_least(n)
    if type(actual) ~= "number" or actual < n then fail(fmt("expected at least %s, got %s", repr(n), repr(actual))) end
    return actual
  end
  function e.to_be_at_most(n)
    if type(actual) ~= "number" or actual > n then fail(fmt("expected at most %s, got %s", repr(n), repr(actual))) end
    return actual
  end
  return e
end

-- Options --------------------------------------------------------------------

local function check_opts(fname, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(fmt("%s: expected a table of options, got %s", fname, type(opts)), 3) end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(fmt("%s: unknown option %s (known: %s)", fname, repr(k), table.concat(names, ", ")), 3)
    end
  end
  return opts
end

-- Time -----------------------------------------------------------------------

--- Runs the client until nothing is in flight: every message between the
--- scripted hubs and the client delivered and handled, every handler done.
function dctest.settle() await("dctest.settle") end

--- Virtual seconds since the test started.
function dctest.now() return N.now() end

--- Settles, then moves the virtual clock `seconds` on, firing timers,
--- sleeps and the sessions' timeouts in order (settling after each).
function dctest.advance(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("dctest.advance: expected seconds, a number >= 0, got " .. repr(seconds), 2)
  end
  await("dctest.settle")
  if seconds > 0 then dc.sleep(seconds) end
  await("dctest.settle")
end

-- Bots -----------------------------------------------------------------------

--- Loads a bot as the client would (`dc.scripts.load`): its own state and
--- sandbox. Paths are relative to the test file's folder.
function dctest.load(path, opts)
  opts = check_opts("dctest.load", opts, { trusted = true, args = true })
  if type(path) ~= "string" then error("dctest.load: expected a path, got " .. repr(path), 2) end
  local id, name = N.load(path, opts.trusted == true, opts.args or {})
  await("dctest.settle")
  local failed = N.main_error(id)
  if failed then error(fmt("dctest.load(%s): the bot's main chunk failed: %s", repr(path), failed), 2) end
  return name
end

-- Scripted hubs --------------------------------------------------------------

local Hub = {}
Hub.__index = Hub
local User = {}
User.__index = User

local function user_spec(fname, spec)
  if type(spec) == "string" then spec = { nick = spec } end
  check_opts(fname, spec, { nick = true, description = true, email = true, share = true, op = true })
  if type(spec.nick) ~= "string" then error(fname .. ": a user needs a nick", 3) end
  return spec
end

--- A scripted hub with the client logged in to it (with `stall = true`,
--- one that accepts the client and never answers: it returns at once).
function dctest.hub(opts)
  opts = check_opts("dctest.hub", opts,
    { protocol = true, name = true, nick = true, users = true, description = true, stall = true })
  local protocol = opts.protocol or "nmdc"
  local idx, url = N.hub_start(protocol, opts.name or "dctest", opts.stall == true)
  local h = setmetatable({ idx = idx, url = url, protocol = protocol }, Hub)
  for _, spec in ipairs(opts.users or {}) do
    spec = user_spec("dctest.hub", spec)
    N.join(idx, spec.nick, spec.description or "", spec.email or "", spec.share or 0, spec.op == true)
  end
  h.dc = dc.connect(url, { nick = opts.nick, description = opts.description })
  if opts.stall then return h end -- it never logs the client in
  -- Online as the client sees it: logged in and the initial user list in
  -- (on NMDC that takes a short quiet window, which the clock jumps over).
  local id = h.dc.id
  local online = dc.wait("hub_connected", { filter = function(e) return e.hub.id == id end, timeout = 60 })
  if not online then
    error("dctest.hub: the client did not log in to the scripted hub\n" .. N.transcript(idx), 2)
  end
  await("dctest.settle")
  return h
end

--- A user joins the hub (everyone, the client included, is told).
function Hub:join(spec)
  spec = user_spec("hub:join", spec)
  N.join(self.idx, spec.nick, spec.description or "", spec.email or "", spec.share or 0, spec.op == true)
  return setmetatable({ nick = spec.nick, hub = self }, User)
end

--- The user says `text` in main chat; `{me = true}` for an action.
function User:say(text, opts)
  opts = check_opts("user:say", opts, { me = true })
  N.say(self.hub.idx, self.nick, tostring(text), opts.me == true)
end

--- The user sends the client a private message: `user:pm(text)`, or
--- `user:pm(nick, text)` naming the client.
function User:pm(a, b, c)
  local text, opts = a, b
  if type(b) == "string" then
    local client = N.client_nick(self.hub.idx)
    if a ~= client then
      error(("user:pm: the scripted hub's only other real user is the client, %s, not %s")
        :format(repr(client), repr(a)), 2)
    end
    text, opts = b, c
  end
  opts = check_opts("user:pm", opts, { me = true })
  N.pm(self.hub.idx, self.nick, tostring(text), opts.me == true)
end

--- The user leaves the hub.
function User:leave() N.leave(self.hub.idx, self.nick) end

--- The hub says `text` in main chat (hub text, no nick).
function Hub:say(text) N.announce(self.idx, tostring(text)) end

--- Sends a protocol line to the client as it is.
function Hub:send_raw(line) N.send_raw(self.idx, tostring(line)) end

--- A user answers the client's last search.
function Hub:search_result(r)
  check_opts("hub:search_result", r, { nick = true, path = true, size = true, tth = true })
  if type(r.nick) ~= "string" or type(r.path) ~= "string" then
    error("hub:search_result: expected {nick = ..., path = ..., size = ..., tth = ...}", 2)
  end
  N.search_result(self.idx, r.nick, r.path, r.size or 0, r.tth)
end

--- What the client sent, oldest first: tables {kind, to, text, me, raw,
--- at}; `kind` ("chat", "pm", "search", "info", "keepalive", "raw") filters.
function Hub:sent(kind)
  local out = {}
  for _, r in ipairs(N.records(self.idx)) do
    if kind == nil or r.kind == kind then
      out[#out + 1] = { kind = r.kind, to = r.to, text = r.text, me = r.me, raw = r.raw, at = r.at }
    end
  end
  return out
end

--- Drops the client's connection (a kick, a crash); the client reconnects
--- after its reconnect delay, on the virtual clock.
function Hub:drop() N.drop(self.idx) end

--- Client connections the hub accepted so far (reconnects count).
function Hub:connections() return N.connections(self.idx) end

--- The hub traffic so far, one line per message.
function Hub:transcript() return N.transcript(self.idx) end

local function describe_sent(h)
  local lines = {}
  for _, r in ipairs(N.records(h.idx)) do
    if r.kind ~= "info" and r.kind ~= "keepalive" then
      lines[#lines + 1] = fmt("    %s%s %s%s", r.kind, r.to and (" to " .. r.to) or "", repr(r.text),
        r.taken and " (matched before)" or "")
    end
  end
  if #lines == 0 then return "    (nothing)" end
  return table.concat(lines, "\n")
end

-- Waits (on the virtual clock) for the first message not matched before that
-- passes `pred`; fails the test after `timeout` virtual seconds.
local function wait_for(h, what, pred, opts)
  local timeout = opts.timeout or 5
  local deadline = N.now() + timeout
  while true do
    await("dctest.settle")
    for _, r in ipairs(N.records(h.idx)) do
      if not r.taken and pred(r) then
        N.mark(h.idx, r.index)
        return { kind = r.kind, to = r.to, text = r.text, me = r.me, raw = r.raw, at = r.at }
      end
    end
    local left = deadline - N.now()
    if left <= 0 then
      error(fmt("expected the client to send %s within %g s; it sent:\n%s", what, timeout, describe_sent(h)), 3)
    end
    await("dctest.hub_wait", h.idx, left)
  end
end

local function matches(text, pattern)
  return pattern == nil or text:find(pattern) ~= nil
end

--- Waits for main chat from the client matching `pattern` (a Lua pattern).
function Hub:expect_chat(pattern, opts)
  opts = check_opts("hub:expect_chat", opts, { timeout = true })
  local r = wait_for(self, "chat matching " .. repr(pattern), function(r)
    return r.kind == "chat" and matches(r.text, pattern)
  end, opts)
  return r -- not a tail call: the error's level names the test's line
end

--- Waits for a private message from the client to `nick` matching `pattern`.
function Hub:expect_pm(nick, pattern, opts)
  opts = check_opts("hub:expect_pm", opts, { timeout = true })
  local r = wait_for(self, fmt("a PM to %s matching %s", repr(nick), repr(pattern)), function(r)
    return r.kind == "pm" and r.to == nick and matches(r.text, pattern)
  end, opts)
  return r
end

--- Waits for a search from the client matching `pattern`.
function Hub:expect_search(pattern, opts)
  opts = check_opts("hub:expect_search", opts, { timeout = true })
  local r = wait_for(self, "a search matching " .. repr(pattern), function(r)
    return r.kind == "search" and matches(r.text, pattern)
  end, opts)
  return r
end

--- Lets `within` virtual seconds pass (default 5) and fails if the client
--- sent main chat or a PM matching `pattern` meanwhile.
function Hub:expect_silence(pattern, opts)
  opts = check_opts("hub:expect_silence", opts, { within = true })
  dctest.settle()
  local before = #N.records(self.idx)
  dctest.advance(opts.within or 5)
  for i, r in ipairs(N.records(self.idx)) do
    if i > before and (r.kind == "chat" or r.kind == "pm") and matches(r.text, pattern) then
      error(fmt("expected no chat or PM matching %s; the client sent %s %s", repr(pattern), r.kind, repr(r.text)), 2)
    end
  end
end
