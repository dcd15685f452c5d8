with builtins; [
  (convertHash { hash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; hashAlgo = "sha256"; toHashFormat = "sri"; })
  (convertHash { hash = "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="; toHashFormat = "base16"; })
  (convertHash { hash = "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="; toHashFormat = "nix32"; })
  (convertHash { hash = "1B2M2Y8AsgTpgAmY7PhCfg=="; hashAlgo = "md5"; toHashFormat = "base16"; })
]
