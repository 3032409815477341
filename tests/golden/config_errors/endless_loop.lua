nick = "me"
while true do
end
