# An interpolated set whose __toString returns a number (not coerced in
# interpolation).
"x${{ __toString = self: 1; }}"
