-- Catching the budget error does not help: it is raised again.
local n = 0
while true do
  pcall(function()
    while true do n = n + 1 end
  end)
end
