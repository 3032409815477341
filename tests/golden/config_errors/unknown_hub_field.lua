-- A misspelt field inside the second hub.
nick = "me"

hubs = {
  {
    url = "adcs://hub.example.org:1511",
    password = "right",
  },
  {
    url = "dchub://nmdc.example.org",
    nick = "other",
    pasword = "wrong",
  },
}
