baseNameOf (./lib + "/sub" + "/value.nix")
