# the list of concatStringsSep.
builtins.concatStringsSep "," "a"
