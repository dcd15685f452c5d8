let x = 3; in [ (x - 1) (x -1) (x+ -1) ]
