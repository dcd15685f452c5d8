# the message of addErrorContext is coerced only when an error passes.
builtins.addErrorContext { } (throw "inner")
