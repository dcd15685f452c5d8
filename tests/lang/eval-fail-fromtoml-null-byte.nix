# A NUL in a TOML string cannot be a Nix string (current CppNix refuses it;
# 2.8 cut the string short at the NUL).
builtins.fromTOML "k = \"before\\u0000after\""
