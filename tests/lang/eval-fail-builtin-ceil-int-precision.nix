# An integer that a float cannot hold exactly is refused by ceil (CppNix
# rounds integers through floats).
builtins.ceil 9007199254740993
