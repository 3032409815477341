-- A helper function must be local: this one is taken for a setting.
function hub(address)
  return { url = address }
end
hubs = { hub("adc://127.0.0.1:1511") }
