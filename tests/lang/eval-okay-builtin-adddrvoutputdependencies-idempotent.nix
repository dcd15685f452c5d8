# builtins.addDrvOutputDependencies (CppNix 2.18) leaves a string whose context
# already is "all outputs of this derivation" as it is.
let
  drv = derivation { name = "idempotent"; builder = "/bin/sh"; system = "x86_64-linux"; };
  once = builtins.addDrvOutputDependencies (builtins.unsafeDiscardOutputDependency drv.drvPath);
  twice = builtins.addDrvOutputDependencies once;
in
[ (once == twice) (builtins.getContext once == builtins.getContext drv.drvPath) (builtins.attrNames (builtins.getContext twice) == [ drv.drvPath ]) ]
