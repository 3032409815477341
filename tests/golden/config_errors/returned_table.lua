-- The other style: return a table of settings.
local music = "/srv/music"
return {
  nick = "me",
  shares = { music },
  hubs = {
    { url = "adc://127.0.0.1:1511",
      autoconect = false },
  },
}
