-- Text without quotes reads a variable that does not exist.
hubs = {
  { url = "dchub://nmdc.example.org", charset = cp1251 },
}
