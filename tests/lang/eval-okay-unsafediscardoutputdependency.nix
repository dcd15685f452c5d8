let d = derivation { name = "u"; builder = "/bin/sh"; system = "x86_64-linux"; }; in builtins.getContext (builtins.unsafeDiscardOutputDependency d.drvPath)
