hubs = {
  "adcs://hub.example.org",
  "http://hub.example.org:1511",
  { url = "dchub://hub.example.org:99999" },
  "hub.example.org",
}
