# __structuredAttrs must be a Boolean.
builtins.derivationStrict { name = "a"; __structuredAttrs = "yes"; }
