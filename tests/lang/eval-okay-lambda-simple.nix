let f = x: y: x - y; in [ (f 10 3) ((x: x * 2) 21) ((a: b: c: a + b + c) 1 2 3) ]
