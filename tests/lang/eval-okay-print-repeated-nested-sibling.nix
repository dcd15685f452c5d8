let inner = [ "s" ]; outer = { a = inner; }; in [ outer inner ]
