nick = "me"
return 42
