-- A number written as a word.
nick = "me"
slots = "three"
