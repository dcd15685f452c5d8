let f = x: assert builtins.isInt x; x + 1; in [ (f 1) (builtins.tryEval (f "a")).success ]
