# A derivation name must be a valid store path name.
builtins.derivationStrict { name = "hello world"; system = "x86_64-linux"; builder = "/bin/sh"; }
