# hashString checks the algorithm before the string.
builtins.hashString "sha3" 1
