with builtins; let s = { b = 2; a = 1; c = 3; "A" = 0; }; in [ (attrNames s) (attrValues s) ]
