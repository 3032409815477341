hubs = "adc://127.0.0.1:1511"
scripts = { true }
