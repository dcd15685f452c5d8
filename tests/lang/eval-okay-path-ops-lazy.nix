let p = ./does-not-exist; in builtins.typeOf p
