-- greeter.lua: greets users who join a hub.
--
-- Shows: an event handler that waits (each handler call is its own coroutine,
-- so dc.sleep here delays this greeting only), and state kept between calls.
-- Hub events carry the hub they came from (e.hub, NMDC or ADC alike); an
-- event emitted locally for a test has none, so the greeting is printed.
--
-- In the console (`dclua`, or `dclua attach` on a daemon):
--
--   dclua> dc.scripts.load("scripts/greeter.lua")
--   dclua> dc.emit("user_joined", {nick = "alice"})   -- a second later: Welcome, alice!
--
-- or list it in the configuration (`scripts = { "greeter.lua" }`) to greet
-- on the hubs it connects.

local DELAY = 1          -- seconds to wait before greeting
local AGAIN_AFTER = 3600 -- greet the same nick at most once an hour

local greeted = {} -- nick -> os.time() of its last greeting

dc.on("user_joined", function(e)
  local nick = e.nick
  if type(nick) ~= "string" then return end
  local now = os.time()
  if greeted[nick] and now - greeted[nick] < AGAIN_AFTER then return end
  greeted[nick] = now -- before waiting: a second join meanwhile is not greeted twice

  dc.sleep(DELAY)
  local text = ("Welcome, %s!"):format(nick)
  if e.hub then
    e.hub:say(text)
  else
    print(text)
  end
end)
