# An indented string that is only an interpolation is still a string, even
# of a path (the path is copied, as in any interpolation).
[
  (builtins.typeOf ''${./eval-okay-indented-string-lone-interpolation.nix}'')
  (builtins.typeOf ''
    ${./eval-okay-indented-string-lone-interpolation.nix}'')
  (builtins.typeOf ''${"x"}'')
  ''
    ${"a"}''
]
