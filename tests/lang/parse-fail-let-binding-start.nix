# In `let`, `in` or `inherit` (the same default reduction).
let a = 1; 7 = a; in a
