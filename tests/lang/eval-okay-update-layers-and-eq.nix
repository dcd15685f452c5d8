# `//` between flat sets, layered sets (results of small updates) and large
# ones, in both orders, and `==` between values of the kinds compared most.
let
  big = builtins.listToAttrs (builtins.genList (i: { name = "a${toString i}"; value = i; }) 40);
  layered = big // { a3 = "three"; } // { extra = true; };
  twice = layered // { a5 = 5.5; } // { a3 = null; };
  small = { a1 = "one"; zz = 1; };
  merged = [
    (small // layered)
    (layered // small)
    (twice // layered)
    (layered // twice)
    (twice // { })
    ({ } // twice)
    (small // { b = 2; } // small)
  ];
  summary = s: [ (builtins.length (builtins.attrNames s)) (s.a1 or "none") (s.a3 or "none") (s.zz or "none") (s.a5 or "none") (s ? extra) ];
in {
  sets = map summary merged;
  eq = [
    (null == null) (null == false) (0 == null) ("a" == "a") ("a" == "b") ("" == null)
    (true == true) (true == false) (1 == 1.0) ("1" == 1) ([ null ] == [ null ])
    ({ a = null; } == { a = null; }) (layered == (big // { a3 = "three"; extra = true; }))
    (twice != layered) (null != null) ("x" != "x")
  ];
}
