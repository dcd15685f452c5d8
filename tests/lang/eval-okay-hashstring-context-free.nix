builtins.hashString "sha256" (builtins.unsafeDiscardStringContext "abc")
