# Content-addressed ("floating") and impure derivations, which CppNix 2.8 only
# instantiates with the ca-derivations and impure-derivations experimental
# features, and input-addressed derivations that depend on them (deferred).
let
  mk = attrs: derivation ({ system = "x86_64-linux"; builder = "/bin/sh"; } // attrs);
in rec {
  floating = mk {
    name = "floating";
    __contentAddressed = true;
    outputHashMode = "recursive";
    outputHashAlgo = "sha256";
    outputs = [ "out" "bin" ];
  };
  floatingFlat = mk {
    name = "floating-flat";
    __contentAddressed = true;
    outputHashMode = "flat";
    outputHashAlgo = "sha512";
  };
  deferred = mk { name = "deferred"; x = floating.bin; };
  deferredChain = mk { name = "deferred-chain"; x = deferred; outputs = [ "out" "dev" ]; };
  impure = mk { name = "impure"; __impure = true; };
  dependsOnImpure = mk { name = "depends-on-impure"; __impure = true; x = impure; };
}
