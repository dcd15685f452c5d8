with builtins; [ (match "a" "a") (match "a" "ab") (match "(a)(b)" "ab") (match "a(x)?b" "ab") (match "(.*)\\.nix" "foo.nix") (match ".*" "") (match "(a|b)*" "abab") ]
