builtins.typeOf "${builtins.toString ./.}"
