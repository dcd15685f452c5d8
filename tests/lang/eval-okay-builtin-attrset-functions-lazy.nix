with builtins; [ (length (attrValues { a = throw "x"; })) (attrNames (mapAttrs (n: v: throw "y") { q = 1; })) ]
