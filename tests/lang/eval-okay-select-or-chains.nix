let s = { a.b.c = 1; }; in [ (s.a.b.c or 0) (s.a.x.c or 0) (s.x.b.c or 0) ((s.a or { }).b.c) ]
