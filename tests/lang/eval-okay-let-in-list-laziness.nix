let xs = [ 1 (throw "x") 3 ]; in [ (builtins.elemAt xs 0) (builtins.elemAt xs 2) ]
