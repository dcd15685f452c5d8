let x = 1; in
let x = 2; y = x; in
[ x y (let x = 3; in x) ]
