"a;b"
