-- seen.lua: answers "!seen NICK" with when NICK was last seen, and
-- remembers across restarts.
--
-- Shows: a chat command (dc.command: answered in main chat or by private
-- message, wherever it was asked, with "!help" listing it), data kept in
-- the script's store (dc.store) and written at most once a second however
-- busy the hub, and user events of any number of hubs.
--
--   scripts = { "seen.lua" }          -- in the configuration
--   !seen alice                       -- in a hub's chat, or in a PM to the bot

local seen = dc.store.load("seen") or {} -- nick -> {time = os.time(), what = ...}
local saving = nil                        -- the pending write, if any

local function note(nick, what)
  if type(nick) ~= "string" then return end
  seen[nick] = { time = os.time(), what = what }
  if not saving then
    saving = dc.after(1, function()
      saving = nil
      dc.store.save("seen", seen)
    end)
  end
end

dc.on("user_joined", function(e) note(e.nick, "joining") end)
dc.on("user_left", function(e) note(e.nick, "leaving") end)
dc.on("chat", function(e) note(e.nick, "talking") end)

local function ago(seconds)
  if seconds < 60 then return "just now" end
  local minutes = seconds // 60
  if minutes < 60 then return ("%d minute%s ago"):format(minutes, minutes == 1 and "" or "s") end
  local hours = minutes // 60
  if hours < 48 then return ("%d hour%s ago"):format(hours, hours == 1 and "" or "s") end
  return ("%d days ago"):format(hours // 24)
end

dc.command("!seen", function(args)
  local nick = args[1]
  if not nick then return "usage: !seen NICK" end
  local s = seen[nick]
  if not s then return ("I have not seen %s."):format(nick) end
  return ("%s was last seen %s, %s."):format(nick, s.what, ago(os.time() - s.time))
end, { help = "NICK: when NICK was last seen" })
