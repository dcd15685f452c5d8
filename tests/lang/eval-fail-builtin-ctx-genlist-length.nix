# genList checks the length first.
builtins.genList "f" "3"
