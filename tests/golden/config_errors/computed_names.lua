-- Settings may be computed; a typo in a computed key is still found.
local base = { nick = "me", slots = 2 }
for k, v in pairs(base) do _ENV[k] = v end
local extra = "uplaod_limit"
_ENV[extra] = 100
