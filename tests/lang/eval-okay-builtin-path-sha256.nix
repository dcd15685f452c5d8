# builtins.path with the expected hash of its result: the same store path as
# without it (a NAR hash by default, a flat hash with recursive = false), in
# any encoding.
let
  plain = builtins.path { path = ./lib/data.txt; name = "data"; };
  nar = builtins.path { path = ./lib/data.txt; name = "data"; sha256 = "0r6fs56rg6r995n5h6ssjcj79i2xbzhwjby4adrj29j2c0cjlgh1"; };
  flat = builtins.path { path = ./lib/data.txt; name = "data-flat"; recursive = false; sha256 = "sha256:04qy0ycwswn48yfy729bsfgkl7yvjj7a3qd57anm57fj0wd4y0p9"; };
in [ (plain == nar) nar flat ]
