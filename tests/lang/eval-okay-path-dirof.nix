[ (dirOf /a/b/c) (dirOf /a) (dirOf "a/b") (dirOf "a") (dirOf "/a/b/") (dirOf "") (dirOf "/") (builtins.typeOf (dirOf /a/b)) (builtins.typeOf (dirOf "/a")) ]
