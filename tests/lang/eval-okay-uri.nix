[ http://example.org/foo?bar=1&x=%20 https://x.y/z mailto:x@y.z ftp://a:b@c/d (builtins.typeOf http://a.b) ]
