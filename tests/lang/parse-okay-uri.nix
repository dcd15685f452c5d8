[ http://example.org/foo?bar=1 https://x.y/z mailto:x@y.z ftp://a:b@c/d ]
