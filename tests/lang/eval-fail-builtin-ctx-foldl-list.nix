# foldl' is named by its C++ name.
builtins.foldl' (a: b: a) 0 { }
