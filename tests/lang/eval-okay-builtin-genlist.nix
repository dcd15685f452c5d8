with builtins; [ (genList (i: i * i) 5) (genList (i: i) 0) (length (genList (i: throw "lazy") 3)) ]
