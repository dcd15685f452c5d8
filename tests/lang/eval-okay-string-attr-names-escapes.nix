{ "a\nb" = 1; "tab\there" = 2; "q\"uote" = 3; }
