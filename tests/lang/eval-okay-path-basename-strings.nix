[ (baseNameOf "/a/b/c") (baseNameOf "a") (baseNameOf "/a/b/") (baseNameOf "") (baseNameOf "/") (baseNameOf "a//") (baseNameOf /a/b) ]
