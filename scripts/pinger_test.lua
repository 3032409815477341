-- pinger_test.lua: the rate-limited bot's tests (`dclua test scripts/`), on
-- both protocols: ten seconds of virtual time pass in no time.

for _, protocol in ipairs({ "nmdc", "adc" }) do
  _G["test_answers_a_ping_" .. protocol] = function()
    local hub = dctest.hub{ protocol = protocol }
    dctest.load("pinger.lua")
    hub:join{ nick = "alice" }:say("ping")
    hub:expect_chat("^pong, alice$")
  end

  _G["test_answers_at_most_three_pings_per_ten_seconds_" .. protocol] = function()
    local hub = dctest.hub{ protocol = protocol }
    dctest.load("pinger.lua")
    local users = {}
    for i = 1, 5 do users[i] = hub:join{ nick = "u" .. i } end
    for i = 1, 5 do users[i]:say("ping") end
    dctest.advance(1)
    local pongs = {}
    for _, r in ipairs(hub:sent("chat")) do
      if r.text:match("^pong") then pongs[#pongs + 1] = r.text end
    end
    expect(pongs).to_equal({ "pong, u1", "pong, u2", "pong, u3" })
    -- Still within the window: dropped.
    users[4]:say("ping")
    hub:expect_silence("^pong", { within = 5 })
    -- Ten seconds after the first answers, the window is open again.
    dctest.advance(5)
    users[5]:say("ping")
    hub:expect_chat("^pong, u5$")
  end

  _G["test_ignores_other_chat_and_its_own_lines_" .. protocol] = function()
    local hub = dctest.hub{ protocol = protocol }
    dctest.load("pinger.lua")
    hub:join{ nick = "bob" }:say("ping?")
    hub.dc:say("ping") -- its own line comes back from the hub: not answered
    hub:expect_silence("pong", { within = 3 })
  end
end
