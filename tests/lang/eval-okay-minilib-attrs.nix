let l = import ./lib/minilib.nix; in [
  (l.recursiveUpdate { a = { b = 1; c = 2; }; d = 3; } { a = { c = 20; e = 5; }; f = 6; })
  (l.mapAttrsToList (n: v: "${n}=${toString v}") { x = 1; y = 2; })
  (l.filterAttrs (n: v: v > 1) { a = 1; b = 2; c = 3; })
  (l.attrByPath [ "a" "b" ] "default" { a.b = "found"; })
  (l.attrByPath [ "a" "x" ] "default" { a.b = "found"; })
  (l.setAttrByPath [ "p" "q" "r" ] 1) ]
