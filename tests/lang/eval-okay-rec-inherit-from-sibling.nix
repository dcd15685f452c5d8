rec { x = { a = 1; }; inherit (x) a; b = a + 1; }
