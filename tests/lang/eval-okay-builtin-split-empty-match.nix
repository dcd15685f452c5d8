with builtins; [ (split "" "ab") (split "x*" "axxb") (split "(a)|b" "ab") ]
