let f = x: y: x + y; g = x: x * 10; in [ (f 1 2) (g (f 1 2)) (f (g 1) 2) ]
