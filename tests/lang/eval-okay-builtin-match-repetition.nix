with builtins; [ (match "a{2}" "aa") (match "a{2,}" "aaaa") (match "a{1,2}" "aaa") (match "a+b?" "aaab") (match "(ab){2}" "abab") (match "a?" "") ]
