# A syntax error before a lexical one is reported first: the lexer runs only
# as far as the parser has read, as CppNix's does.
[ 1 2 ) "an unterminated string
