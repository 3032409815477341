-- A misspelt setting name.
description = "I share music"
email = ""
slots = 4

-- the nick:
nikc = "me"
