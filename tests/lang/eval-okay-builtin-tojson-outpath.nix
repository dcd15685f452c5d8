builtins.toJSON [ { outPath = "out"; other = 1; } { __toString = s: "ts"; a = 1; } ]
