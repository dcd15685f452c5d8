builtins.fromJSON ''{ "a": 1, "b": [ 1, 2.5, -3, 1e2, 0.5e-1, true, false, null ], "c": { "d": "e" }, "u": "\u00e9\n\t\"\\\/", "big": 12345678901234 }''
