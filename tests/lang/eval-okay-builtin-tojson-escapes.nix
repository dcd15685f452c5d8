builtins.toJSON [ "quote\"" "back\\slash" "nl\n" "tab\t" "cr\r" "\${x}" "/" "é" "${builtins.fromJSON ''"\u0001\u001f\u007f"''}" ]
