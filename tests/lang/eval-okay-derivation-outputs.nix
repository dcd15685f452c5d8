let d = derivation { name = "multi"; builder = "/bin/sh"; system = "x86_64-linux"; outputs = [ "out" "dev" ]; };
in [ d.out.outPath d.dev.outPath d.dev.outputName (d.outPath == d.out.outPath) d.all.length or (builtins.length d.all) ]
