# A small library in the style of nixpkgs' lib (written for these tests),
# used by the eval-okay-minilib-* cases.
let
  inherit (builtins) foldl' length elemAt head tail isAttrs attrNames listToAttrs
    functionArgs intersectAttrs replaceStrings concatStringsSep split filter isString
    splitVersion substring stringLength genList;
in rec {
  fix = f: let x = f x; in x;
  extends = overlay: base: self: let super = base self; in super // overlay self super;
  composeExtensions = f: g: self: super: let fApplied = f self super; in fApplied // g self (super // fApplied);

  foldr = op: nul: list:
    let len = length list; go = n: if n == len then nul else op (elemAt list n) (go (n + 1));
    in go 0;
  range = first: last: if first > last then [ ] else genList (n: first + n) (last - first + 1);
  reverseList = xs: let l = length xs; in genList (n: elemAt xs (l - n - 1)) l;
  unique = foldl' (acc: e: if builtins.elem e acc then acc else acc ++ [ e ]) [ ];
  flatten = x: if builtins.isList x then builtins.concatMap flatten x else [ x ];
  take = count: list: genList (n: elemAt list n) (if count > length list then length list else count);

  recursiveUpdate = lhs: rhs:
    lhs // builtins.mapAttrs (name: value:
      if isAttrs value && lhs ? ${name} && isAttrs lhs.${name} then recursiveUpdate lhs.${name} value else value) rhs;
  mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (attrNames attrs);
  filterAttrs = pred: set: listToAttrs (builtins.concatMap (name: let v = set.${name}; in if pred name v then [ { inherit name; value = v; } ] else [ ]) (attrNames set));
  attrByPath = path: default: set:
    if path == [ ] then set
    else if isAttrs set && set ? ${head path} then attrByPath (tail path) default set.${head path}
    else default;
  setAttrByPath = path: value: if path == [ ] then value else { ${head path} = setAttrByPath (tail path) value; };

  splitString = sep: s: filter isString (split (escapeRegex sep) s);
  escapeRegex = replaceStrings (map (c: c) [ "\\" "[" "{" "(" ")" "^" "$" "|" "*" "+" "?" "." ]) (map (c: "\\${c}") [ "\\" "[" "{" "(" ")" "^" "$" "|" "*" "+" "?" "." ]);
  escapeShellArg = arg: "'${replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
  hasPrefix = pref: str: substring 0 (stringLength pref) str == pref;
  removePrefix = pref: str: if hasPrefix pref str then substring (stringLength pref) (stringLength str) str else str;
  toUpper = replaceStrings (stringToChars "abcdefghijklmnopqrstuvwxyz") (stringToChars "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  stringToChars = s: genList (p: substring p 1 s) (stringLength s);
  majorMinor = v: concatStringsSep "." (take 2 (splitVersion v));

  callPackageWith = autoArgs: fn: args:
    let f = if builtins.isFunction fn then fn else import fn;
    in f (intersectAttrs (functionArgs f) autoArgs // args);
}
