# ceil names its argument.
builtins.ceil "1.5"
