# __div checks its divisor first: zero is reported before the dividend.
"a" / 0
