hubs = {
  "dchub://hub.example.org",
  "adc://other.example.org:1511",
  { url = "nmdc://HUB.example.org:411", nick = "again" },
}
