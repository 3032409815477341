hubs = {
  url = "adcs://hub.example.org:1511",
  password = "secret",
}
