let f = { z, a, m }: [ z a m ]; in f { m = 3; a = 1; z = 26; }
