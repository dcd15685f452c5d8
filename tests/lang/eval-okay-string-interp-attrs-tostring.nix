let s = { __toString = self: "custom:${toString self.v}"; v = 7; }; in "got ${s}"
