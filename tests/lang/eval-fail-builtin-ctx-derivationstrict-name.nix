# derivationStrict without a name.
builtins.derivationStrict { }
