-- searcher.lua: searches every few minutes and downloads each new file that
-- matches, once, even across restarts.
--
-- Shows: dc.every with a callback that waits (dc.search collects results
-- for a few seconds; a tick that comes meanwhile is skipped), search results
-- as objects (result:download()), downloads that run on their own while the
-- script goes on, and the script's store remembering what it fetched.
--
--   scripts = { "searcher.lua" }      -- in the configuration
--
-- Change the settings below to taste. Files land in the download folder,
-- under "searcher/"; dc.queue() in the console shows them coming.

local WORDS = "ubuntu iso"  -- every word must match
local EVERY = 300           -- seconds between two searches
local MIN_SIZE = 1          -- bytes; smaller files are ignored
local TYPE = "any"          -- or audio, video, document, compressed...

local fetched = dc.store.load("fetched") or {} -- TTH -> the file's name

local function round()
  local results, why = dc.search({ text = WORDS, type = TYPE, min_size = MIN_SIZE })
  if not results then
    dc.log.info("searcher: nothing searched: " .. tostring(why))
    return
  end
  for _, r in ipairs(results) do
    -- A folder has no TTH; a file several users have comes once per user.
    if r.tth and not fetched[r.tth] then
      fetched[r.tth] = r.name
      dc.store.save("fetched", fetched)
      local ok, d = pcall(r.download, r, { dir = "searcher" })
      if ok then
        dc.log.info(("searcher: fetching %s (%d bytes) from %s"):format(r.name, r.size or 0, r.nick))
        dc.spawn(function()
          local path, err = d:wait()
          if path then
            dc.log.info("searcher: got " .. path)
          else
            dc.log.warn("searcher: " .. r.name .. ": " .. tostring(err))
          end
        end)
      else
        dc.log.warn("searcher: could not queue " .. r.name .. ": " .. tostring(d))
      end
    end
  end
end

dc.every(EVERY, round)
-- The first search at once, as soon as a hub is online. (A round that runs
-- alongside a tick does no harm: a file is marked fetched before anything
-- waits.)
dc.spawn(function()
  local online = false
  for _, h in ipairs(dc.hubs()) do
    online = online or h.state == "online"
  end
  if not online then dc.wait("hub_connected", { timeout = 60 }) end
  round()
end)
