with { toString = x: "shadowed"; }; [ (toString 1) (builtins.toString 1) ]
