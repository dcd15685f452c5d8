# intersectAttrs keeps the second set's values and positions whichever side is
# smaller, in name order.
let
  big = builtins.listToAttrs (builtins.genList (i: { name = "n${toString i}"; value = i * 10; }) 50);
  small = { n3 = "x"; n40 = "y"; missing = "z"; n0 = "w"; };
in [
  (builtins.intersectAttrs small big)
  (builtins.intersectAttrs big small)
  (builtins.attrNames (builtins.intersectAttrs small big))
  (builtins.intersectAttrs { } big)
  (builtins.intersectAttrs big { })
  (builtins.intersectAttrs { a = 1; b = 2; } { b = 3; a = 4; })
]
