# `${toString x}` inside interpolations (strings and attribute names) for
# every kind of value toString takes, the built-in shadowed, and reached
# through `builtins`.
let
  set = { __toString = self: "from-${self.tag}"; tag = "set"; };
  drvLike = { outPath = "/some/out"; };
  names = builtins.listToAttrs (map (i: { name = "k${toString i}"; value = i; }) [ 1 2 3 ]);
  shadowed = let toString = x: "shadow"; in "a${toString 1}b";
in [
  "i${toString 42}/${toString (-7)}/${toString 0}"
  "f${toString 1.5}/${toString 0.1}/${toString 100000000.0}"
  "b${toString true}|${toString false}|${toString null}|"
  "l${toString [ 1 "two" [ 3 [] ] null 4.5 true ]}"
  "s${toString set} d${toString drvLike}"
  "${toString "plain"}${toString 3}"
  "n${toString (1 + 2)}${builtins.toString 4}"
  names.k2
  names."k${toString 3}"
  ({ "x${toString 5}" = 5; })
  shadowed
  (let x = 9; in "${toString x}${toString x}")
]
