# With a float involved, __mul forces both as floats (CppNix words the first
# frame without "argument").
"a" * 1.0
