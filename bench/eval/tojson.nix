# toJSON of a large nested value, and fromJSON of the result.
let
  value = builtins.genList (i: { id = i; name = "n${toString i}"; tags = [ "a" "b" (toString i) ]; nested.ok = i / 3 * 3 == i; }) 60000;
  json = builtins.toJSON value;
in builtins.stringLength json + builtins.length (builtins.fromJSON json)
