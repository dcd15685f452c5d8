let __findFile = sp: p: "found ${p}"; in [ <foo/bar> <x> ]
