scripts = { "a.lua", extra = "b.lua" }
