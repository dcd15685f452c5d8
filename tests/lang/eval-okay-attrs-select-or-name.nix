let s = { or = 5; "if" = 6; }; in [ s.or s."if" ({ a = 1; }.or or 2) ]
