let x = 1; f = { x ? 2 }: x; in [ (f { }) (f { x = 3; }) x ]
