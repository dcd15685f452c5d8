# "nar" is current CppNix's name for the recursive (NAR) ingestion method: the
# same output path (only the environment variable differs).
let
  fixed = mode: builtins.derivationStrict {
    name = "m"; system = "x86_64-linux"; builder = "/bin/sh";
    outputHashMode = mode;
    outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
  };
in
(fixed "nar").out == (fixed "recursive").out
