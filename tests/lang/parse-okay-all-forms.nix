let
  a = rec { b = 1; "c" = 2; ${"d"} = 3; inherit f; inherit (a) e; };
  f = { x, y ? 1, ... }@args: x: assert true; with a; if x then y else [ 1 2.0 "s" ''i'' ./p <nixpkgs> http://x.org/ null ];
in a.b or (a ? c && !false || true -> false) // { } ++ [ ] + 1 - 2 * 3 / 4
