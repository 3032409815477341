shares = { "/" }
