slots = 5000
tcp_port = 70000
reconnect_delay = 2.5
