# the separator of concatStringsSep.
builtins.concatStringsSep 1 [ ]
