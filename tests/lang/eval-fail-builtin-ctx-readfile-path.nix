# readFile realises its argument's context.
builtins.readFile "lib"
