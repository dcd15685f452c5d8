# an entry of the search path.
builtins.findFile [ { prefix = "x"; } ] "x"
