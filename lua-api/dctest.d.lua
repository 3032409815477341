---@meta dctest
-- LuaLS definitions of the bot test kit (`dclua test`): the globals a
-- `*_test.lua` file has beside `dc`. The guide's "The bot test kit" says how
-- time and the scripted hubs behave. Kept in step with src/testkit/dctest.lua
-- by a test (tests/testkit.rs).

---@class dctest
dctest = {}

---Starts a scripted hub and returns once the client is online on it (with
---`stall`, a hub that never answers, at once).
---@async
---@param opts? {protocol?: "nmdc"|"adc", name?: string, nick?: string, description?: string, users?: (dctest.UserSpec|string)[], stall?: boolean}
---@return dctest.Hub
function dctest.hub(opts) end

---Loads a bot as the client does (its own state; untrusted unless `trusted`);
---relative paths are from the test file's folder. Returns the script's name.
---@async
---@param path string
---@param opts? {trusted?: boolean, args?: string[]}
---@return string
function dctest.load(path, opts) end

---Runs the client until nothing is in flight and every handler has run.
---@async
function dctest.settle() end

---Settles, lets `seconds` of virtual time pass (timers fire in order), settles.
---@async
---@param seconds number
function dctest.advance(seconds) end

---Virtual seconds since the test began.
---@return number
function dctest.now() end

---A short text for a value (strings quoted, tables with sorted keys).
---@param v any
---@return string
function dctest.repr(v) end

---@class dctest.UserSpec
---@field nick string
---@field description? string
---@field email? string
---@field share? integer bytes shared
---@field op? boolean an operator

---@class dctest.Sent
---@field kind "chat"|"pm"|"search"|"info"|"keepalive"|"raw"
---@field to? string the recipient of a PM
---@field text string the message, the search's words (or TTH:...), or the line
---@field me boolean an action (/me)
---@field raw string the line as sent
---@field at number virtual seconds since the hub started

---A scripted hub.
---@class dctest.Hub
---@field dc dc.Hub the client's hub object for it
---@field url string its address
---@field protocol "nmdc"|"adc"
local Hub = {}

---A user joins (or updates its info); returns the user.
---@param spec dctest.UserSpec|string
---@return dctest.User
function Hub:join(spec) end

---Hub text in main chat (no nick).
---@param text string
function Hub:say(text) end

---Sends a protocol line to the client as it is.
---@param line string
function Hub:send_raw(line) end

---A user answers the client's last search.
---@param r {nick: string, path: string, size?: integer, tth?: string}
function Hub:search_result(r) end

---What the client sent, oldest first; `kind` filters.
---@param kind? "chat"|"pm"|"search"|"info"|"keepalive"|"raw"
---@return dctest.Sent[]
function Hub:sent(kind) end

---Drops the client's connection; it reconnects after its reconnect delay.
function Hub:drop() end

---Client connections the hub accepted so far (reconnects count).
---@return integer
function Hub:connections() end

---The hub traffic so far, one line per message.
---@return string
function Hub:transcript() end

---Waits for main chat from the client matching `pattern`; fails the test after `timeout` (5) virtual seconds.
---@async
---@param pattern? string a Lua pattern
---@param opts? {timeout?: number}
---@return dctest.Sent
function Hub:expect_chat(pattern, opts) end

---Waits for a PM from the client to `nick` matching `pattern`.
---@async
---@param nick string
---@param pattern? string
---@param opts? {timeout?: number}
---@return dctest.Sent
function Hub:expect_pm(nick, pattern, opts) end

---Waits for a search from the client matching `pattern`.
---@async
---@param pattern? string
---@param opts? {timeout?: number}
---@return dctest.Sent
function Hub:expect_search(pattern, opts) end

---Lets `within` (5) virtual seconds pass; fails if chat or a PM matching `pattern` came meanwhile.
---@async
---@param pattern? string
---@param opts? {within?: number}
function Hub:expect_silence(pattern, opts) end

---A user of a scripted hub.
---@class dctest.User
---@field nick string
---@field hub dctest.Hub
local User = {}

---The user says `text` in main chat.
---@param text string
---@param opts? {me?: boolean}
function User:say(text, opts) end

---The user sends the client a private message (`user:pm(text)`, or
---`user:pm(client_nick, text)`).
---@param text string
---@param opts? {me?: boolean}
---@overload fun(self: dctest.User, to: string, text: string, opts?: {me?: boolean})
function User:pm(text, opts) end

---The user leaves the hub.
function User:leave() end

---@class dctest.Expectation
local Expectation = {}

---Equal, tables compared deeply; the failure names the first difference.
---@param expected any
---@return any
function Expectation.to_equal(expected) end

---The same value (`==`).
---@param expected any
---@return any
function Expectation.to_be(expected) end

---Neither false nor nil.
---@return any
function Expectation.to_be_truthy() end

---False or nil.
---@return any
function Expectation.to_be_falsy() end

---Nil.
function Expectation.to_be_nil() end

---A string matching the Lua pattern.
---@param pattern string
---@return string
function Expectation.to_match(pattern) end

---A string containing `value`, or a table with an element equal to it.
---@param value any
---@return any
function Expectation.to_contain(value) end

---A number >= n.
---@param n number
---@return number
function Expectation.to_be_at_least(n) end

---A number <= n.
---@param n number
---@return number
function Expectation.to_be_at_most(n) end

---Starts an assertion on `actual`: `expect(x).to_equal(y)`.
---@param actual any
---@return dctest.Expectation
function expect(actual) end
