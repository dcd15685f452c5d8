let d = derivation { name = "hello"; builder = "/bin/sh"; system = "x86_64-linux"; args = [ "-c" "echo hi > $out" ]; };
in [ d.outPath d.drvPath d.type d.name d.system d.outputName (builtins.attrNames d) ]
