(import ./lib/default.nix).fromSub.value
