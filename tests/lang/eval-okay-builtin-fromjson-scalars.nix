map builtins.fromJSON [ "1" "-0" "1.0" "\"s\"" "true" "null" "[]" "{}" " 42 " "1E3" ]
