# A content-addressed derivation needs its experimental feature.
builtins.derivationStrict { name = "ca"; system = "x86_64-linux"; builder = "/bin/sh"; __contentAddressed = true; }
