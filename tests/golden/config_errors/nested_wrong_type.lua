hubs = {
  { url = "adc://127.0.0.1:1511", autoconnect = "yes" },
}
