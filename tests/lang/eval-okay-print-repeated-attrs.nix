let x = { a = 1; }; in [ x x { a = 1; } ]
