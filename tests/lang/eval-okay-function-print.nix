[ (x: x) { f = x: x; } ]
