with builtins; [ (split "a|ab" "xabx") (split "(a|ab)(c|bcd)" "abcd") (split "[[:space:]]+" " a  b ") ]
