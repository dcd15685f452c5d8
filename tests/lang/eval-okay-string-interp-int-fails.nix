builtins.tryEval "${toString 1}"
