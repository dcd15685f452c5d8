(builtins.tryEval { a = throw "deep"; }).success
