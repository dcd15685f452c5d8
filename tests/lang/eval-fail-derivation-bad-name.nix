(derivation { name = "bad name!"; builder = "/bin/sh"; system = "x"; }).outPath
