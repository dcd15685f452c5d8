let a = { }; c = { d = 5; }; in a.b or c.d
