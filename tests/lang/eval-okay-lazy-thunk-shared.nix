let x = builtins.trace "forced once" 5; in x + x
