# What __toString returns must itself be coercible.
builtins.toString { __toString = self: { }; }
