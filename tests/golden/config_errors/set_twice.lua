nick = "me"
return {
  nick = "you",
}
