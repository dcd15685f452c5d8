builtins.toJSON { a = 1; b = [ true false null ]; c = "s"; d = { }; e = [ ]; f = -5; "key with space" = "v"; }
