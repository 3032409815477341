scripts = {
  "bots/greeter.lua",
  { trusted = true },
}
