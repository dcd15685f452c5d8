with builtins; [ (split "," "a,b,c") (split "x" "abc") (split "," "") (split "," ",") (split "(,)" "a,b") (split "([ab])(c)?" "xaycbz") ]
