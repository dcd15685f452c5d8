# attrValues has one argument, named without an ordinal.
builtins.attrValues [ ]
