-- logger.lua: a timer bot that logs what happens.
--
-- Shows: dc.every (a heartbeat logging how many events of each kind it saw),
-- dc.after (a one-shot "quiet" timer, re-armed by every event and stopped
-- with :stop()), dc.on for several events, and dc.log.
--
--   dclua run scripts/logger.lua 10     -- heartbeat every 10 s (default 60)

local HEARTBEAT = tonumber(dc.args[1]) or 60
local QUIET = 3 * HEARTBEAT -- log once when nothing happened for this long

local WATCHED = { "user_joined", "user_left", "chat", "pm", "script_loaded", "script_unloaded" }
local seen = {} -- event name -> count

local function summary()
  local parts = {}
  for _, name in ipairs(WATCHED) do
    if seen[name] then parts[#parts + 1] = name .. "=" .. seen[name] end
  end
  return #parts > 0 and table.concat(parts, " ") or "no events yet"
end

local quiet -- dc.Timer, armed after each event
local function rearm_quiet()
  if quiet then quiet:stop() end
  quiet = dc.after(QUIET, function()
    dc.log.info(("quiet for %g s (%s)"):format(QUIET, summary()))
  end)
end

for _, name in ipairs(WATCHED) do
  dc.on(name, function()
    seen[name] = (seen[name] or 0) + 1
    rearm_quiet()
  end)
end

local beats = 0
dc.every(HEARTBEAT, function()
  beats = beats + 1
  dc.log.info(("heartbeat %d: %s"):format(beats, summary()))
end)

dc.log.info(("logging every %g s"):format(HEARTBEAT))
