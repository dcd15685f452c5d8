# A string joined from many strings with contexts keeps every element once,
# listed in byte order, however the parts were ordered.
let
  hashOf = i: builtins.substring 0 32 (builtins.hashString "sha256" (toString i));
  fixHash = h: builtins.replaceStrings [ "e" "o" "u" "t" ] [ "a" "b" "c" "d" ] h;
  withContext = i:
    builtins.appendContext "x${toString i}" { "/nix/store/${fixHash (hashOf i)}-p${toString i}" = { path = true; }; };
  parts = builtins.genList (i: withContext (i * 7 - (i * 7) / 300 * 300)) 300;
  joined = builtins.concatStringsSep "," (parts ++ parts);
  names = builtins.attrNames (builtins.getContext joined);
in [
  (builtins.length names)
  (builtins.head names)
  (builtins.elemAt names 150)
  (builtins.stringLength joined)
  (builtins.length (builtins.attrNames (builtins.getContext (builtins.unsafeDiscardStringContext joined))))
]
