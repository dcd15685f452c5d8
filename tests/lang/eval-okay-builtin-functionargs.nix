with builtins; [ (functionArgs ({ a, b ? 1, ... }: a)) (functionArgs (x: x)) (functionArgs ({ }: 1)) (functionArgs (args@{ z ? 0 }: z)) (functionArgs builtins.add) ]
