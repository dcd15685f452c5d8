with builtins; [ (match "((a)(b)?)+" "aab") (match "(a(b(c)))" "abc") (match "(a*)(a*)" "aaa") (match "(a|ab)(bc|c)" "abc") (match "x(y)?z" "xz") ]
