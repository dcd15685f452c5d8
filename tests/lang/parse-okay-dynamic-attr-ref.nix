x: x.${"a"}.b
