nick = "me"
password = "secret"
