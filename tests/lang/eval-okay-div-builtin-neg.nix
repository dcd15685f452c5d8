with builtins; [ (div (-7) 2) (div 7 (-2)) (div (-7.0) 2) ]
