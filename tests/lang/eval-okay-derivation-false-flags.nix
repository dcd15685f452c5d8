# __contentAddressed and __impure are flags for derivationStrict, never
# environment variables: false ones leave the derivation as it is.
let
  base = { name = "flags"; system = "x86_64-linux"; builder = "/bin/sh"; };
in
(builtins.derivationStrict (base // { __contentAddressed = false; __impure = false; })).drvPath
== (builtins.derivationStrict base).drvPath
