let f = { }: "empty"; g = { ... }: "any"; in [ (f { }) (g { x = 1; }) ]
