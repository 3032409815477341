local function check(n)
  if n > 10 then
    error("too many slots: " .. n)
  end
  return n
end
slots = check(20)
