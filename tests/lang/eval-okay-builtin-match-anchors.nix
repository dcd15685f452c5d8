with builtins; [ (match "^a$" "a") (match "a|^b" "b") (match "x^" "x") ]
