[ (toString 1) (toString "s") (toString true) (toString false) (toString null) (toString [ 1 "a" null true [ 2 3 ] ]) (toString 1.5) (toString [ ]) (toString 0.1) (toString (-2)) ]
