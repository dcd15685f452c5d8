builtins.mapAttrs (n: v: (builtins.tryEval v).success) { good = 1; bad = throw "x"; asserted = assert false; 1; }
