# Overlays over a fixed point, the way package sets are built: `final` is the
# finished set, `prev` the set before this layer; layers see each other's
# additions, and attributes computed from `final` follow later overrides.
let
  fix = f: let x = f x; in x;
  extends = overlay: base: final: let prev = base final; in prev // overlay final prev;
  compose = overlays: base: builtins.foldl' (acc: o: extends o acc) base overlays;
  extensible = rattrs: fix rattrs // { extend = o: extensible (extends o rattrs); };

  base = final: {
    version = "1.0";
    name = "pkg-${final.version}";
    deps = [ final.libA ];
    libA = { name = "libA"; uses = final.version; };
  };
  bump = final: prev: { version = "2.0"; old = prev.version; };
  addLib = final: prev: {
    libB = { name = "libB"; after = prev.libA.name; };
    deps = prev.deps ++ [ final.libB ];
  };
  rename = final: prev: { libA = prev.libA // { name = "libA2"; }; };

  set = fix (compose [ bump addLib rename ] base);
  ext = (extensible base).extend bump;
  ext2 = ext.extend (final: prev: { version = prev.version + ".1"; });
in {
  inherit (set) version name old;
  deps = map (d: d.name) set.deps;
  libAUses = set.libA.uses;
  libBAfter = set.libB.after;
  extName = ext.name;
  ext2Name = ext2.name;
  ext2Old = ext2.old;
  hasExtend = builtins.isFunction ext2.extend;
}
