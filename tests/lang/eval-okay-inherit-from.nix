let s = { a = 1; b = { c = 2; }; }; in { inherit (s) a b; }
