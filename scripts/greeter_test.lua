-- greeter_test.lua: the greeter's tests, run by `dclua test scripts/`
-- against a scripted hub on a virtual clock (both protocols).

for _, protocol in ipairs({ "nmdc", "adc" }) do
  _G["test_greets_a_user_who_joins_" .. protocol] = function()
    local hub = dctest.hub{ protocol = protocol }
    dctest.load("greeter.lua")
    hub:join{ nick = "alice" }
    local said = hub:expect_chat("Welcome, alice!", { timeout = 2 })
    -- It waits a second before greeting.
    expect(said.at).to_be_at_least(1)
  end

  _G["test_greets_a_nick_once_an_hour_" .. protocol] = function()
    local hub = dctest.hub{ protocol = protocol }
    dctest.load("greeter.lua")
    local bob = hub:join{ nick = "bob" }
    hub:expect_chat("Welcome, bob!")
    bob:leave()
    hub:join{ nick = "bob" }
    hub:expect_silence("bob", { within = 10 })
    dctest.advance(3600)
    bob:leave()
    hub:join{ nick = "bob" }
    hub:expect_chat("Welcome, bob!")
  end
end
