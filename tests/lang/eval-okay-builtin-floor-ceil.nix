with builtins; [ (floor 1.5) (ceil 1.5) (floor (-1.5)) (ceil (-1.5)) (floor 2) (ceil 2) (floor 0.0) (ceil 1.0e-10) (floor 1.0e15) ]
