let f = args@{ a ? args.b or "nob", b ? 0 }: a; in [ (f { }) (f { b = 1; }) ]
