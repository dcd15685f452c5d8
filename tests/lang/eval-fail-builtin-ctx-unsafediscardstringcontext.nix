# unsafeDiscardStringContext coerces its argument.
builtins.unsafeDiscardStringContext { }
