with builtins; [ (match "a.b" "a\nb") (match "(.*)" "x\ny") ]
