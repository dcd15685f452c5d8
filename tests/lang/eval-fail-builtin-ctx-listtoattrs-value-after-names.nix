# every name is checked before any value is looked up.
builtins.listToAttrs [ { name = "a"; } { name = true; value = 1; } ]
