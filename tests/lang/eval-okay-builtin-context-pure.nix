with builtins; [ (hasContext "plain") (getContext "plain") (hasContext (unsafeDiscardStringContext "x")) ]
