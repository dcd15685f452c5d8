# Where no binding can start in a set, current CppNix (bison, after its default
# reduction of the bindings so far) expects only `inherit`.
{ a = 1; 2.5 = 2; }
