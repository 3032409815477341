hubs = { { url = "adc://127.0.0.1:1511", pasword = "x", nikc = "y", zzz = 1, chrset = "cp1251" } }
rawset(_ENV, "nikc", "me")
rawset(_ENV, "sltos", 2)
rawset(_ENV, "aaa", 2)
