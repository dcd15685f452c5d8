# A NUL in a JSON string cannot be a Nix string (current CppNix refuses it;
# 2.8 cut the string short at the NUL).
builtins.fromJSON "{\"k\": \"before\\u0000after\"}"
