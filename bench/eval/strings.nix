# String building: interpolation, concatenation, replaceStrings, and strings
# carrying contexts (from a derivation's output path).
let
  drv = derivation { name = "ctx"; system = "x86_64-linux"; builder = "/bin/sh"; };
  line = i: "item ${toString i} at ${drv}/share/${toString (i * 7)}\n";
  lines = builtins.genList line 60000;
  text = builtins.concatStringsSep "" lines;
  replaced = builtins.replaceStrings [ "item" "share" ] [ "entry" "lib" ] text;
in builtins.stringLength replaced + builtins.length (builtins.attrNames (builtins.getContext replaced))
