# An output hash mode that is none of flat, recursive/nar, text and git.
builtins.derivationStrict { name = "m"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashMode = "tree"; outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; }
