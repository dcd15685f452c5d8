map builtins.splitVersion [ "1.2.3" "1.2pre3" "2.3a-b_c" "" "..a.." "1a2b" "10.0.0-rc1" "x" "1" "..." ]
