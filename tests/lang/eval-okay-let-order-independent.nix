let c = b * 2; b = a + 1; a = 5; in c
