builtins.tryEval (builtins.deepSeq [ (throw "x") ] 1)
