# An operand of a pipe is an operator expression, never a bare lambda.
1 |> x: x
