[ "tab\there" "nl\nx" "cr\rx" "quote\"x" "backslash\\x" "dollar\${x}" "\$" "\a\b\c\q" "\ " "$" "$$" "a$b" "$${x}" ]
