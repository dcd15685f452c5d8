# mapAttrs' attributes share the function and the old set: each forces on its
# own (one failing attribute leaves the others), `f name` is called only when
# an attribute is forced, and a result maps again.
let
  s = { a = 1; b = throw "b"; c = 3; };
  m = builtins.mapAttrs (n: v: "${n}=${toString v}") s;
  m2 = builtins.mapAttrs (n: v: v + "/" + n) m;
  partial = builtins.mapAttrs (n: if n == "b" then throw "n" else v: v * 10) s;
in [
  m.a
  m.c
  (builtins.tryEval m.b).success
  m2.c
  partial.a
  (builtins.tryEval partial.b).success
  (builtins.attrNames m2)
  m.a
  (builtins.mapAttrs (n: v: v) { })
]
