let __lessThan = a: b: "lt ${toString a} ${toString b}"; in [ (1 < 2) (1 > 2) ]
