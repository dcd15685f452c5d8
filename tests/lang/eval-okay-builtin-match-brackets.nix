with builtins; [ (match "[]a]+" "]a]") (match "[^]a]+" "bcd") (match "[a-c]+" "abcab") (match "[a\\]+" "a\\") (match "[-a]+" "-a-") (match "[a-]+" "a--") (match "[.]" ".") (match "[.]" "x") ]
