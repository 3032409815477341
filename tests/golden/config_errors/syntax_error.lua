nick = "me"
slots = 3
hubs = {
  { url = "adc://127.0.0.1:1511" }
  { url = "adc://127.0.0.1:1512" },
}
