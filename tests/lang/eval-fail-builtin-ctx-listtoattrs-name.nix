# listToAttrs' name has a frame at the name's position.
builtins.listToAttrs [ { name = 1; value = 2; } ]
