let d = derivation { name = "r"; builder = "/bin/sh"; system = "x86_64-linux"; };
    ctx = builtins.getContext "${d}";
    plain = builtins.unsafeDiscardStringContext "${d}";
in (builtins.getContext (builtins.appendContext plain ctx)) == ctx
