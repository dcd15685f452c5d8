builtins.warn "a warning on stderr" 7
