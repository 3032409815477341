-- kit_test.lua: the bot test kit's own features, on both protocols (run by
-- tests/testkit.rs through `dclua test tests/kit`).

for _, protocol in ipairs({ "nmdc", "adc" }) do
  local function test(name, f) _G["test_" .. name .. "_" .. protocol] = f end

  test("users_listed_at_login_are_there_and_not_joins", function()
    local joins = 0
    dc.on("user_joined", function() joins = joins + 1 end)
    local hub = dctest.hub{ protocol = protocol, users = { "alice", { nick = "bob", share = 1024, op = true } } }
    local bob = hub.dc:user("bob")
    expect(bob).to_be_truthy()
    expect(bob.share).to_equal(1024)
    expect(bob.op).to_be(true)
    expect(hub.dc:user("alice")).to_be_truthy()
    expect(joins).to_equal(0)
    hub:join{ nick = "carol", description = "hello" }
    dctest.settle()
    expect(joins).to_equal(1)
    expect(hub.dc:user("carol").description).to_equal("hello")
  end)

  test("private_messages_both_ways", function()
    local hub = dctest.hub{ protocol = protocol }
    local alice = hub:join{ nick = "alice" }
    local got
    dc.on("pm", function(e) got = e end)
    alice:pm(hub.dc.nick, "psst")
    dctest.settle()
    expect(got.from).to_equal("alice")
    expect(got.text).to_equal("psst")
    alice:pm("again", { me = true })
    dctest.settle()
    expect({ got.text, got.me }).to_equal({ "again", true })
    hub.dc:pm("alice", "hi there")
    local r = hub:expect_pm("alice", "^hi")
    expect(r.text).to_equal("hi there")
    expect(r.kind).to_equal("pm")
  end)

  test("a_search_and_its_results", function()
    local hub = dctest.hub{ protocol = protocol }
    hub:join{ nick = "alice", share = 10 }
    local results
    dc.spawn(function() results = dc.search{ text = "holiday photos", timeout = 10 } end)
    local s = hub:expect_search("holiday")
    expect(s.text).to_match("photos")
    hub:search_result{ nick = "alice", path = "/pics/holiday photos.zip", size = 4096,
                       tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ" }
    dctest.advance(10)
    expect(#results).to_equal(1)
    expect(results[1].nick).to_equal("alice")
    expect(results[1].size).to_equal(4096)
    expect(results[1].name).to_equal("holiday photos.zip")
    expect(results[1].tth).to_equal("LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ")
  end)

  test("the_client_reconnects_on_the_virtual_clock", function()
    local hub = dctest.hub{ protocol = protocol }
    expect(hub:connections()).to_equal(1)
    local t = dctest.now()
    hub:drop()
    local again = dc.wait("hub_connected", { timeout = 600 })
    expect(again).to_be_truthy()
    expect(hub:connections()).to_equal(2)
    -- The first reconnect waits the reconnect delay (30 s, with jitter).
    expect(dctest.now() - t).to_be_at_least(10)
    expect(dctest.now() - t).to_be_at_most(120)
  end)

  test("keep_alives_go_out_when_the_line_is_idle", function()
    local hub = dctest.hub{ protocol = protocol }
    expect(#hub:sent("keepalive")).to_equal(0)
    dctest.advance(600)
    -- One after each two idle minutes (checked every 30 s).
    local n = #hub:sent("keepalive")
    expect(n).to_be_at_least(3)
    expect(n).to_be_at_most(5)
  end)

  test("a_hub_that_never_answers_times_the_login_out", function()
    local hub = dctest.hub{ protocol = protocol, stall = true }
    local t = dctest.now()
    local e = dc.wait("hub_disconnected", { timeout = 600 })
    expect(e).to_be_truthy()
    expect(e.reason).to_match("not logged in after 60 s")
    expect(dctest.now() - t).to_equal(60)
    expect(hub:connections()).to_equal(1)
  end)

  test("os_time_follows_the_virtual_clock", function()
    local t0 = os.time()
    dctest.advance(7200)
    expect(os.time() - t0).to_equal(7200)
    expect(dctest.now()).to_be_at_least(7200)
  end)

  test("a_loaded_bot_is_sandboxed_unless_trusted", function()
    local dir = dc.data_dir()
    local path = dir .. "/probe.lua"
    local f = assert(io.open(path, "w"))
    f:write('local arg = ... dc.on("chat", function(e) if e.text == "probe" then '
      .. 'e.hub:say("io=" .. tostring(io ~= nil) .. " arg=" .. tostring(arg)) end end)')
    f:close()
    local hub = dctest.hub{ protocol = protocol }
    dctest.load(path, { args = { "x" } })
    hub:join{ nick = "alice" }:say("probe")
    hub:expect_chat("^io=false arg=x$")
    dc.scripts.unload("probe")
    dctest.load(path, { trusted = true, args = { "y" } })
    hub:join{ nick = "bob" }:say("probe")
    hub:expect_chat("^io=true arg=y$")
  end)

  test("hub_text_and_raw_lines_reach_the_client", function()
    local hub = dctest.hub{ protocol = protocol }
    local got = {}
    dc.on("chat", function(e) got[#got + 1] = e.text end)
    hub:say("Welcome to the hub")
    dctest.settle()
    expect(got).to_contain("Welcome to the hub")
  end)
end

function test_expect_matchers_pass_and_fail_as_documented()
  expect({ a = { 1, 2 }, b = "x" }).to_equal({ b = "x", a = { 1, 2 } })
  expect("abc").to_match("^a.c$")
  expect({ 1, { 2 } }).to_contain({ 2 })
  expect("hello world").to_contain("o w")
  expect(nil).to_be_nil()
  expect(0).to_be_truthy()
  expect(false).to_be_falsy()
  expect(3).to_be_at_least(3)
  expect(3).to_be_at_most(3)
  local ok, err = pcall(function() expect({ 1, { x = 1 } }).to_equal({ 1, { x = 2 } }) end)
  expect(ok).to_be(false)
  expect(err).to_contain("first difference at [2].x: expected 2, got 1")
  ok, err = pcall(function() expect(1).to_be_at_least(2) end)
  expect(err).to_contain("expected at least 2, got 1")
  ok, err = pcall(function() dctest.hub{ protocl = "adc" } end)
  expect(err).to_contain("unknown option \"protocl\"")
end
