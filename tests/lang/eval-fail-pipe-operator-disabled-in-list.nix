# Without the feature, a pipe token is refused wherever it appears, even
# where the grammar could not use it.
[ 1 |> builtins.length ]
