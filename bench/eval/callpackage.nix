# nixpkgs' callPackage pattern: every package's function arguments are taken
# from the whole package set with `intersectAttrs (functionArgs f) pkgs`, so
# the cost of that intersection decides how a large package set scales.
let
  n = 40000;
  pkgs = builtins.listToAttrs (builtins.genList (i: { name = "p${toString i}"; value = i; }) n);
  callPackage = fn: args: fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // args);
  package = i: { p1, p2, p3 ? 0, extra ? i }: p1 + p2 + p3 + extra;
in builtins.foldl' (acc: i: acc + callPackage (package i) { p3 = i; }) 0 (builtins.genList (i: i) n)
