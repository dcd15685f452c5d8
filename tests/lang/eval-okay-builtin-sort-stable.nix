builtins.sort (a: b: a.k < b.k) [
  { k = 2; v = "a"; } { k = 1; v = "b"; } { k = 2; v = "c"; } { k = 1; v = "d"; } { k = 0; v = "e"; } { k = 2; v = "f"; }
  { k = 1; v = "g"; } { k = 0; v = "h"; } { k = 2; v = "i"; } { k = 1; v = "j"; } { k = 0; v = "k"; } { k = 2; v = "l"; }
]
