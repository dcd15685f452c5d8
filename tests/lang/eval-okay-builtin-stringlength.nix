map builtins.stringLength [ "" "abc" "a\nb" "${"x"}y" ]
