let x = { v = 1; }; in map (y: y) [ x x ]
