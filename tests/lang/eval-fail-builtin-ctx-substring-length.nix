# substring's length argument.
builtins.substring 0 "2" "abc"
