hubs = {
  "adcs://hub.example.org",
  "http://hub.example.org:1511",
  { url = "dchub://hub.example.org:99999" },
  "hub.example.org:4111x",
  "hub.example.org:411", -- a bare host:port is an NMDC hub
  "dchub://hub.example.org",
}
