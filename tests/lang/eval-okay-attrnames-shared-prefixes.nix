# attrNames, attrValues and printing order names by their bytes, also names
# that share their first eight bytes or are prefixes of one another.
let
  set = builtins.listToAttrs (map (name: { inherit name; value = builtins.stringLength name; }) [
    "abcdefghZ" "abcdefgh" "abcdefghA" "" "a" "ab" "abcdefgh-" "abcdefg" "abcdefghij" "abcdefghi"
    "B" "b" "zzzzzzzzzzzzzzzz" "zzzzzzzz" "zzzzzzzzz" "0" "_" "é" "e"
  ]);
in {
  names = builtins.attrNames set;
  values = builtins.attrValues set;
  inherit set;
}
