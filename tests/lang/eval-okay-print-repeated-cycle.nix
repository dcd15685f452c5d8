let x = { inherit x; y = 1; }; in x
