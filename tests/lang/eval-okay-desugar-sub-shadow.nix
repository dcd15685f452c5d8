let __sub = a: b: "shadowed"; in [ (5 - 3) (-(1)) ]
