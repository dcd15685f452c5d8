builtins.floor "1"
