-- pinger.lua: answers "ping" in main chat with "pong, NICK", at most three
-- times in any ten seconds, however many ask: a flood of pings cannot make
-- the bot flood the hub.
--
-- Shows: a rate limit kept in a script's own state (a sliding window of the
-- last answers' times, from os.time), a chat handler that drops what it may
-- not answer instead of queueing it, and skipping our own lines (hubs echo
-- main chat). Its tests, with the bot test kit: pinger_test.lua.
--
--   scripts = { "pinger.lua" }        -- in the configuration
--   ping                              -- in a hub's main chat
--
-- A plain word, not "!ping": hubs such as uhub take "!" lines as their own
-- commands and never pass them on.

local LIMIT = 3    -- answers at most...
local WINDOW = 10  -- ...in this many seconds

local answered = {} -- os.time() of each recent answer, oldest first

local function may_answer(now)
  while answered[1] and now - answered[1] >= WINDOW do
    table.remove(answered, 1)
  end
  if #answered >= LIMIT then return false end
  answered[#answered + 1] = now
  return true
end

dc.on("chat", function(e)
  if e.text ~= "ping" or not e.hub or not e.nick then return end
  if e.nick == e.hub.nick then return end -- our own line, echoed by the hub
  if may_answer(os.time()) then
    e.hub:say(("pong, %s"):format(e.nick))
  else
    dc.log.info(("pinger: not answering %s (%d answers in %d s)"):format(e.nick, LIMIT, WINDOW))
  end
end)
