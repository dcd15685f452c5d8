[ ([ 1 (throw "no") ] == [ 2 (throw "no") ]) ([ 1 ] == [ 1 2 ]) ]
