builtins.typeOf ~/x
