with builtins; [ (match "a\\.b" "a.b") (match "a\\.b" "axb") (match "\\(x\\)" "(x)") (match "a\\+" "a+") (match "\\$" "$") ]
