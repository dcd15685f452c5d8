# In read-only mode (how the corpus is evaluated) builtins.storePath does not
# insist that the path is valid; the result carries the path as its context.
let p = builtins.storePath "/nix/store/00000000000000000000000000000000-not-there"; in
[ p (builtins.attrNames (builtins.getContext p)) ]
