let l = import ./lib/minilib.nix; in [
  (l.splitString "." "a.b..c") (l.splitString ", " "x, y, z") (l.escapeShellArg "it's") (l.hasPrefix "foo" "foobar")
  (l.removePrefix "foo" "foobar") (l.toUpper "hello, world") (l.majorMinor "1.2.3") (l.majorMinor "10") (l.escapeRegex "a.b*c") ]
