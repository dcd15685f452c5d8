let l = [ 1 ]; in { a = l; b = l; c = [ 1 ]; }
