[ (builtins.elem { a = 1; } [ { a = 1; } ]) (builtins.elem { a = 1; } [ { a = 2; } ]) ]
