with builtins; let s = { a = 1; "b c" = 2; }; in [ (getAttr "a" s) (getAttr "b c" s) (hasAttr "a" s) (hasAttr "z" s) ]
