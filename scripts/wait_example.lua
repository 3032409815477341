-- wait_example.lua: writing sequential code with coroutines.
--
-- Shows: dc.wait for an event with a filter and a timeout, dc.spawn with
-- Job:wait, and a coroutine.wrap generator whose body calls dc.sleep (the
-- sleep passes through your own coroutine to dclua). The main chunk is itself
-- a coroutine job, so it may wait at top level.
--
-- In the console (`dclua`, or `dclua attach` on a daemon), load it and,
-- within 5 seconds, send it its event:
--
--   dclua> dc.scripts.load("scripts/wait_example.lua")
--   dclua> dc.emit("go", {ready = true, from = "me"})
--
-- (`dclua run scripts/wait_example.lua` runs it too, with no console to
-- send the event from: it then says "no go within 5 s".)

-- 1. Wait for the first "go" event that is ready, for at most 5 seconds.
--    A filter may also be a table of fields: {filter = {ready = true}}.
print("waiting for go")
local e = dc.wait("go", { filter = function(ev) return ev.ready == true end, timeout = 5 })
if e then
  print("go from " .. tostring(e.from))
else
  print("no go within 5 s")
end

-- A timeout gives nil.
print("late: " .. tostring(dc.wait("never", { timeout = 0.05 })))

-- 2. Run work side by side, then collect the results.
local function slow_square(n)
  dc.sleep(0.02 * n)
  return n * n
end
local jobs = {}
for n = 1, 3 do
  jobs[n] = dc.spawn(slow_square, n)
end
local sum = 0
for _, job in ipairs(jobs) do
  local ok, v = job:wait() -- true, results... or false, error
  assert(ok, v)
  sum = sum + v
end
print("sum of squares: " .. sum)

-- 3. A generator that waits between values.
local function ticks(n, period)
  return coroutine.wrap(function()
    for i = 1, n do
      dc.sleep(period)
      coroutine.yield(i)
    end
  end)
end
for i in ticks(3, 0.02) do
  print("tick " .. i)
end
print("done")
