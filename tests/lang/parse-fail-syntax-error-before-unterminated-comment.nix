# An unterminated comment after a complete expression and a stray token: the
# token is the error.
let x = 1 in x /* never closed
