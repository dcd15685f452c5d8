# elemAt checks the index before the list.
builtins.elemAt "not a list" "0"
