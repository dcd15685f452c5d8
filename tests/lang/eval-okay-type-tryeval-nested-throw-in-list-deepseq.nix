(builtins.tryEval (builtins.deepSeq [ (throw "x") ] 1)).success
