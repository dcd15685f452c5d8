# Which built-ins keep the positions of the attributes they pass on
# (listToAttrs takes the `value` attribute's, `//`, intersectAttrs and
# removeAttrs keep them) and which make new attributes without one
# (mapAttrs, zipAttrsWith, groupBy, fromJSON).
let
  src = {
    x = 1;
    y = 2;
  };
  line = name: set: let p = builtins.unsafeGetAttrPos name set; in if p == null then null else [ p.line p.column ];
in [
  (line "x" (builtins.listToAttrs [ { name = "x";
    value = 1; } ]))
  (line "x" (src // { z = 3; }))
  (line "y" (builtins.intersectAttrs { y = 0; } src))
  (line "x" (builtins.removeAttrs src [ "y" ]))
  (line "x" (builtins.mapAttrs (n: v: v) src))
  (line "x" (builtins.zipAttrsWith (n: v: v) [ src ]))
  (line "x" (builtins.groupBy (v: "x") [ 1 ]))
  (line "a" (builtins.fromJSON "{\"a\":1}"))
]
