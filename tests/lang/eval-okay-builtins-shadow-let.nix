let map = "mine"; in [ map (builtins.map (x: x) [ 1 ]) ]
