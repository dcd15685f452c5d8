builtins.attrNames (builtins.mapAttrs (n: v: v) { z = 1; a = 2; m = 3; })
