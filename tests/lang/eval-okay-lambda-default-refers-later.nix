let f = { a ? b + 1, b ? 5 }: a; in [ (f {}) (f { b = 1; }) ]
