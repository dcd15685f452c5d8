let s = rec { a = [ b ]; b = 1; }; in s.a
