let x = 5; y = 2.5; in [ (-x) (- y) (-(-x)) (0 - x) (-x - 1) (builtins.sub 0 x) ]
