let or = 1; in 2
