with { a = 1; b = 2; }; { inherit a; c = let inherit b; in b; }
