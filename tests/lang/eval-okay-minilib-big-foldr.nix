let l = import ./lib/minilib.nix; in builtins.length (l.foldr (a: b: [ a ] ++ b) [ ] (l.range 1 2000))
