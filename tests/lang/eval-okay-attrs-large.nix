let s = builtins.listToAttrs (builtins.genList (i: { name = "k${toString i}"; value = i; }) 2000); in [ s.k0 s.k1999 (builtins.length (builtins.attrNames s)) (builtins.head (builtins.attrNames s)) ]
