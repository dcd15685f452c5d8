# Nested contexts, outermost first.
builtins.addErrorContext "while doing the outer thing"
  (builtins.addErrorContext "while doing the inner thing" (throw "deep"))
