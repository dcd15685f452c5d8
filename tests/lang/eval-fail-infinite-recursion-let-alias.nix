# x and y are one thunk (y is bound to the value of x, already a thunk):
# forcing it again is reported at the variable that re-enters it.
let x = y; y = x; in x
