shares = { "/srv/a", nil, "/srv/c" }
