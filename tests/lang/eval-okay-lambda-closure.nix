let mk = n: (x: x + n); add3 = mk 3; add5 = mk 5; in [ (add3 1) (add5 1) ]
