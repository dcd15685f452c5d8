# A synthetic package set in the style of nixpkgs: `lib.fix` over a set of
# `callPackage`d functions, two overlays, `makeOverridable`, an `mkDerivation`
# wrapper with `overrideAttrs`, multiple outputs and string contexts everywhere.
# Evaluates every package to its drvPath and prints a digest of all of them, so
# nivis and CppNix can be compared by one line. `n` scales the set linearly.
{ n ? 10000 }:
let
  lib = rec {
    fix = f: let x = f x; in x;
    extends = overlay: f: self: let super = f self; in super // overlay self super;
    foldExtensions = overlays: base: builtins.foldl' (acc: overlay: extends overlay acc) base overlays;
    makeOverridable = f: origArgs:
      let
        result = f origArgs;
        overrideWith = newArgs: origArgs // (if builtins.isFunction newArgs then newArgs origArgs else newArgs);
      in
      if builtins.isAttrs result
      then result // { override = newArgs: makeOverridable f (overrideWith newArgs); }
      else result;
    callPackageWith = autoArgs: fn: args:
      let allArgs = builtins.intersectAttrs (builtins.functionArgs fn) autoArgs // args;
      in makeOverridable fn allArgs;
    optionalString = cond: s: if cond then s else "";
    concatMapStringsSep = sep: f: list: builtins.concatStringsSep sep (map f list);
    mod = a: b: a - a / b * b;
  };

  stdenv = rec {
    system = "x86_64-linux";
    shell = derivation { name = "bootstrap-shell"; inherit system; builder = "/bin/sh"; };
    mkDerivation = attrs:
      let
        pname = attrs.pname;
        name = "${pname}-${attrs.version}";
        deps = attrs.buildInputs or [ ];
        drvAttrs = builtins.removeAttrs attrs [ "buildInputs" "meta" "passthru" ] // {
          inherit name system;
          builder = "${shell}/bin/sh";
          args = [ "-e" (builtins.toFile "builder.sh" "echo building") ];
          outputs = [ "out" "dev" ];
          buildInputs = lib.concatMapStringsSep " " (d: "${d.dev}") deps;
          propagated = lib.concatMapStringsSep ":" (d: "${d}/lib") deps;
          configureFlags = [ "--prefix=${placeholder "out"}" "--with-name=${name}" ];
        };
        drv = derivation drvAttrs;
      in
      drv // (attrs.passthru or { }) // {
        meta = attrs.meta or { };
        overrideAttrs = f: mkDerivation (attrs // f attrs);
      };
  };

  package = i: { stdenv, lib, pkgs }:
    stdenv.mkDerivation {
      pname = "pkg${toString i}";
      version = "1.${toString (lib.mod i 10)}";
      # Dependencies spread like a real package graph: many packages share the
      # low-numbered ones, and chains stay logarithmically short.
      buildInputs = map (d: pkgs."pkg${toString (i / d)}") (if i < 8 then [ ] else [ 2 3 7 ]);
      enableFeature = lib.optionalString (lib.mod i 3 == 0) "yes";
      meta = { description = "synthetic package number ${toString i}"; license = "mit"; };
      passthru.index = i;
    };

  base = self:
    let callPackage = lib.callPackageWith { inherit stdenv lib; pkgs = self; };
    in builtins.listToAttrs (builtins.genList (i: { name = "pkg${toString i}"; value = callPackage (package i) { }; }) n);

  overlayOverride = self: super: builtins.listToAttrs (builtins.genList
    (k: let name = "pkg${toString (k * 10)}"; in { inherit name; value = super.${name}.override (old: { lib = old.lib; }); })
    (n / 10));

  overlayAttrs = self: super: builtins.listToAttrs (builtins.genList
    (k: let name = "pkg${toString (k * 10 + 5)}"; in { inherit name; value = super.${name}.overrideAttrs (old: { patched = "yes"; }); })
    (n / 10));

  pkgs = lib.fix (lib.foldExtensions [ overlayOverride overlayAttrs ] base);
  drvPaths = map (name: pkgs.${name}.drvPath) (builtins.attrNames pkgs);
in
"${toString (builtins.length drvPaths)} ${builtins.hashString "sha256" (builtins.concatStringsSep "\n" drvPaths)}"
