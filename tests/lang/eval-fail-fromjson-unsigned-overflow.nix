# An integer above the signed 64-bit range is refused (current CppNix), not
# wrapped to a negative number as 2.8 did; one beyond 64 bits is a float.
[ (builtins.fromJSON "18446744073709551616") (builtins.fromJSON "9223372036854775808") ]
