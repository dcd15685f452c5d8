[ (builtins.break 1) (builtins.break { a = "x"; }).a ]
