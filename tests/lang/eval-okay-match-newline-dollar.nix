[ (builtins.match "a$" "a\n") (builtins.match "a\n" "a\n") (builtins.match "[^x]*" "a\nb") ]
