# Derivations for the ATerm and hashDerivationModulo tests. The test instantiates
# this with CppNix 2.8 in a throw-away store; every .drv it writes (including
# dependencies) must read back and print byte-identically with nivis, and nivis
# must compute the same .drv paths and output paths. `binary.bin` (bytes 1..255)
# is written next to this file by the test.
let
  sys = "x86_64-linux";
  mk = attrs: derivation ({ system = sys; builder = "/bin/sh"; } // attrs);
in rec {
  simple = mk { name = "simple"; };

  multi = mk {
    name = "multi";
    outputs = [ "out" "dev" "lib" "man" ];
    args = [ "-c" "echo \"quoted\" \\ back\tslash\r\nnext" "" ];
  };

  escapes = mk {
    name = "escapes";
    text = "line1\nline2 \"q\" ü ☃ 🎉 \r carriage \t tab \\ backslash $ dollar";
    empty = "";
    "weird key \"\n" = "value";
    list = [ "a" "b c" 1 2.5 true null ];
    binary = builtins.readFile ./binary.bin;
  };

  fixedFlat = mk {
    name = "fixed-flat";
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";
  };

  fixedFlatSha1 = mk {
    name = "fixed-flat-sha1";
    outputHash = "sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  };

  fixedFlatMd5 = mk {
    name = "fixed-md5";
    outputHashAlgo = "md5";
    outputHash = "d41d8cd98f00b204e9800998ecf8427e";
  };

  fixedRecursive = mk {
    name = "fixed-recursive";
    outputHashMode = "recursive";
    outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
  };

  fixedRecursiveSha512 = mk {
    name = "fixed-recursive-sha512";
    outputHashMode = "recursive";
    outputHashAlgo = "sha512";
    outputHash = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
  };

  withSources = mk {
    name = "with-sources";
    script = builtins.toFile "script.sh" "echo hello";
    src = ./cases.nix;
    ref = "${simple}/bin and ${./binary.bin}";
  };

  dependent = mk {
    name = "dependent";
    deps = [ multi.dev multi.lib simple fixedFlat fixedRecursive escapes ];
    src = withSources;
  };

  dependsOnDependent = mk {
    name = "depends-on-dependent";
    outputs = [ "out" "doc" ];
    x = dependent;
    y = fixedFlatSha1;
    z = multi.man;
  };

  structured = mk {
    name = "structured";
    __structuredAttrs = true;
    outputs = [ "out" "bin" ];
    nested = { a = [ 1 2 { b = "c\n\"d\""; } ]; e = null; };
    dep = simple;
  };

  # Many inputs, to exercise ordering by hash rather than by name.
  fanIn = mk {
    name = "fan-in";
    inputs = builtins.genList (i: mk { name = "leaf-${toString i}"; n = toString i; }) 12;
  };
}
