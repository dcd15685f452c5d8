builtins.deepSeq [ 1 2 [ 3 (throw "deep") ] ] null
