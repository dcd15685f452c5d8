"got ${extra}"
