_ENV[1] = "one"
