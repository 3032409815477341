local base
nick = "me"
download_dir = base .. "/downloads"
