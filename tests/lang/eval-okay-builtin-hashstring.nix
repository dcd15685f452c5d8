with builtins; map (a: [ (hashString a "") (hashString a "abc") (hashString a "hello\nworld") ]) [ "md5" "sha1" "sha256" "sha512" ]
