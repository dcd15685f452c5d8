# Backspace and form feed get JSON's short escapes, the other control
# characters \u00XX, as current CppNix (nlohmann::json) writes them; in keys too.
let s = builtins.fromJSON ''"a\bb\fc\u0001\u000b\u001f"''; in
builtins.toJSON [ s { ${s} = builtins.fromJSON ''"\f\b"''; } ]
