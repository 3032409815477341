-- All problems are reported at once, in line order.
slots = 0
nick = "two words"
listen_address = "localhost"
hubs = { "adc://127.0.0.1:1511", 42 }
shares = { { path = "/srv/a", name = "Music" }, { path = "/srv/b", name = "music" } }
tcp_port = 4000
tls_port = 4000
foo = true
