# The expected hash does not match the contents: "store path mismatch".
builtins.path { path = ./lib/data.txt; sha256 = "0000000000000000000000000000000000000000000000000000"; }
