# The two pipe operators do not mix in one chain.
1 |> (x: x) <| 2
