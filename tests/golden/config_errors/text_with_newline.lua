description = "two\nlines"
