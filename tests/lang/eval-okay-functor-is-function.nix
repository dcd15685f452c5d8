let f = { __functor = s: x: x; }; in [ (builtins.isFunction f) (builtins.isAttrs f) (builtins.typeOf f) ]
