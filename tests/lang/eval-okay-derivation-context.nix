let d = derivation { name = "ctx"; builder = "/bin/sh"; system = "x86_64-linux"; };
in [ (builtins.getContext "${d}") (builtins.hasContext "${d}") (builtins.getContext d.drvPath) (builtins.unsafeDiscardStringContext "${d}") ]
