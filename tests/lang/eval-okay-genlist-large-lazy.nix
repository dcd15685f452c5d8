builtins.elemAt (builtins.genList (i: i * 2) 1000000) 999999
