# a derivation name that is not a string.
builtins.derivationStrict { name = 1; }
