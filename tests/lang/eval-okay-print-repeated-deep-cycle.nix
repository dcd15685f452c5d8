let x = { a = x; }; in x.a.a.a
