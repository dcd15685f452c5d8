rec { x = { y = 2; }; z = x.y + 1; }
