[ (builtins.tryEval 1) (builtins.tryEval "s") (builtins.tryEval [ (throw "lazy inside") ]).success ]
