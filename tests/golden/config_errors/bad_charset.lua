hubs = {
  { url = "dchub://a.example.org", charset = "cp1215" },
  { url = "dchub://b.example.org", charset = "klingon" },
  { url = "adc://c.example.org:1511", charset = "cp1251" },
}
