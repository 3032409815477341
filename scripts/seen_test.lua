-- seen_test.lua: the !seen bot's tests (`dclua test scripts/`), on both
-- protocols, against a scripted hub on a virtual clock.

for _, protocol in ipairs({ "nmdc", "adc" }) do
  _G["test_answers_in_chat_where_it_is_asked_" .. protocol] = function()
    local hub = dctest.hub{ protocol = protocol }
    dctest.load("seen.lua")
    local carol = hub:join{ nick = "carol" }
    carol:say("hello everyone")
    dctest.advance(1)
    local dave = hub:join{ nick = "dave" }
    dave:say("!seen carol")
    hub:expect_chat("^carol was last seen talking, just now%.$")
  end

  _G["test_answers_a_pm_by_pm_and_counts_the_hours_" .. protocol] = function()
    local hub = dctest.hub{ protocol = protocol }
    dctest.load("seen.lua")
    local carol = hub:join{ nick = "carol" }
    dctest.advance(1)
    carol:leave()
    dctest.advance(2 * 3600 + 5)
    local dave = hub:join{ nick = "dave" }
    dave:pm("!seen carol")
    local answer = hub:expect_pm("dave", "carol")
    expect(answer.text).to_equal("carol was last seen leaving, 2 hours ago.")
    -- Nothing in main chat: a PM is answered by PM.
    hub:expect_silence("carol", { within = 2 })
  end

  _G["test_does_not_know_a_nick_it_never_saw_" .. protocol] = function()
    local hub = dctest.hub{ protocol = protocol }
    dctest.load("seen.lua")
    hub:join{ nick = "dave" }:say("!seen nobody")
    hub:expect_chat("I have not seen nobody%.")
    hub:join{ nick = "erin" }:say("!help")
    expect(hub:expect_chat("^Commands:").text).to_contain("!seen")
  end
end
