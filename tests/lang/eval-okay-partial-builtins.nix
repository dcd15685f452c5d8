let m = builtins.map (x: x * 2); in [ (m [ 1 2 ]) (m [ ]) ]
