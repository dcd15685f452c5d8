{ value = 7; list = [ 1 2 3 ]; }
