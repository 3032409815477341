local parts = {}
for i = 1, 100 do
  parts[i] = string.rep("x", 1024 * 1024) .. i
end
