[ (builtins.toFile "hello.txt" "hello world\n") (builtins.toFile "empty" "") ]
