let s = { "foo bar" = 1; "x.y" = 2; }; in [ s."foo bar" s."x.y" s.${"x.y"} ]
