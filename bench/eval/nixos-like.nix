# A NixOS-like evaluation over the real nixpkgs `lib` (not part of this
# repository: run.sh passes its path as `libPath` when NIXPKGS_LIB is set).
#
# What it imitates: a system configuration, i.e. `lib.evalModules` over a few
# core modules (systemd units, users, /etc files, the firewall, kernel
# parameters, assertions) plus `services` service modules that each declare
# their options (most are disabled, as in NixOS, where every module is imported
# whatever is enabled), and a host configuration that enables `enabled` of them
# and overrides their settings with mkDefault/mkForce/mkIf/mkMerge/mkOrder.
# The packages the services use come from a nixpkgs-style package set built
# with lib.makeScope, callPackageWith (makeOverridable), lib.extends overlays
# and `derivation`. The result is the system's "toplevel" drvPath plus hashes
# of the JSON of the whole configuration, so both evaluators must agree on all
# of it.
{ libPath, services ? 600, enabled ? 120, packages ? 3000, full ? false }:
let
  lib = import libPath;
  inherit (lib) mkOption mkEnableOption mkIf mkMerge mkDefault mkForce mkOrder
    mkBefore mkAfter types;
  str = toString;

  # ---------------------------------------------------------------- packages
  system = "x86_64-linux";

  # A stdenv.mkDerivation look-alike: attributes to a derivation, with
  # `overrideAttrs` and passthru attributes kept beside it.
  mkDerivation = attrs:
    let
      name = "${attrs.pname}-${attrs.version}";
      drv = derivation ({
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" "echo building ${name}; mkdir $out" ];
        buildInputs = map (d: d.outPath) (attrs.buildInputs or [ ]);
        configureFlags = lib.concatStringsSep " " (attrs.configureFlags or [ ]);
      } // builtins.removeAttrs attrs [ "pname" "buildInputs" "configureFlags" "passthru" "meta" ]);
    in lib.extendDerivation true (attrs.passthru or { } // {
      overrideAttrs = f: mkDerivation (attrs // f attrs);
      meta = attrs.meta or { };
      inherit (attrs) pname version;
    }) drv;

  # Package functions, as nixpkgs files are: formals name their dependencies.
  leaf = { mkDerivation, lib, pname, version ? "1.0" }:
    mkDerivation { inherit pname version; meta.description = "leaf ${pname}"; };
  withZlib = { mkDerivation, lib, zlib, openssl ? null, pname, dep ? null }:
    mkDerivation {
      inherit pname; version = "2.${str (lib.stringLength pname)}";
      buildInputs = [ zlib ] ++ lib.optional (openssl != null) openssl ++ lib.optional (dep != null) dep;
      configureFlags = [ "--with-zlib=${zlib}" ] ++ lib.optionals (openssl != null) [ "--with-ssl" ];
      meta = { license = "mit"; platforms = [ system ]; };
    };
  withMany = { mkDerivation, lib, zlib, openssl, python, perl, pname, deps ? [ ] }:
    mkDerivation {
      inherit pname; version = "3.1";
      buildInputs = [ zlib openssl python perl ] ++ deps;
      configureFlags = map (d: "--with-${d.pname}") deps;
      passthru.tests = { simple = pname; };
    };

  basePkgs = self: {
    inherit lib mkDerivation;
    zlib = self.callPackage leaf { pname = "zlib"; version = "1.2.13"; };
    openssl = self.callPackage withZlib { pname = "openssl"; openssl = null; };
    python = self.callPackage withZlib { pname = "python3"; };
    perl = self.callPackage leaf { pname = "perl"; version = "5.36"; };
  } // builtins.listToAttrs (builtins.genList (i:
    let n = "pkg${str i}"; in {
      name = n;
      value =
        if lib.mod i 3 == 0 then self.callPackage leaf { pname = n; }
        else if lib.mod i 3 == 1 then self.callPackage withZlib {
          pname = n; dep = if i > 10 then self."pkg${str (i / 2)}" else null; }
        else self.callPackage withMany {
          pname = n; deps = lib.optionals (i > 10) [ self."pkg${str (i - 1)}" self."pkg${str (i / 3)}" ]; };
    }) packages);

  overlays = [
    (final: prev: { zlib = prev.zlib.override { version = "1.3"; }; })
    (final: prev: {
      perl = prev.perl.overrideAttrs (old: { version = "5.38"; });
      pkg7 = prev.pkg7.override { pname = "pkg7-patched"; };
    })
  ];
  # makeScope over the fixed point of the base set extended by the overlays.
  pkgs = lib.makeScope (extra: lib.callPackageWith (pkgs // extra))
    (lib.foldl' (acc: ov: lib.extends ov acc) basePkgs overlays);

  # ------------------------------------------------------------ core modules
  unitModule = { name, config, ... }: {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      description = mkOption { type = types.str; default = ""; };
      wantedBy = mkOption { type = types.listOf types.str; default = [ ]; };
      after = mkOption { type = types.listOf types.str; default = [ ]; };
      requires = mkOption { type = types.listOf types.str; default = [ ]; };
      environment = mkOption { type = types.attrsOf (types.either types.str types.package); default = { }; };
      path = mkOption { type = types.listOf types.package; default = [ ]; };
      serviceConfig = mkOption {
        type = types.attrsOf (types.oneOf [ types.bool types.int types.str (types.listOf types.str) ]);
        default = { };
      };
      script = mkOption { type = types.lines; default = ""; };
      preStart = mkOption { type = types.lines; default = ""; };
      unitText = mkOption { type = types.str; internal = true; };
    };
    config = {
      serviceConfig.Type = mkDefault "simple";
      unitText = ''
        [Unit]
        Description=${config.description}
        After=${lib.concatStringsSep " " config.after}
        Requires=${lib.concatStringsSep " " config.requires}
        [Service]
        ${lib.concatStrings (lib.mapAttrsToList (k: v: "Environment=\"${k}=${toString v}\"\n") config.environment)}${lib.generators.toKeyValue { } (lib.mapAttrs (k: v: if builtins.isList v then lib.concatStringsSep " " v else v) config.serviceConfig)}
        ExecStart=${config.script}
      '';
    };
  };

  userModule = { name, config, ... }: {
    options = {
      name = mkOption { type = types.str; default = name; };
      uid = mkOption { type = types.nullOr types.int; default = null; };
      group = mkOption { type = types.str; default = "nogroup"; };
      extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
      home = mkOption { type = types.str; default = "/var/empty"; };
      isSystemUser = mkOption { type = types.bool; default = false; };
      shell = mkOption { type = types.either types.package types.str; default = "/run/current-system/sw/bin/nologin"; };
    };
  };

  etcModule = { name, config, ... }: {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      target = mkOption { type = types.str; default = name; };
      text = mkOption { type = types.nullOr types.lines; default = null; };
      mode = mkOption { type = types.str; default = "symlink"; };
      source = mkOption { type = types.package; };
    };
    config.source = mkIf (config.text != null) (mkDerivation {
      pname = "etc-${lib.replaceStrings [ "/" ] [ "-" ] name}"; version = "0";
      inherit (config) text;
    });
  };

  coreModule = { config, pkgs, ... }: {
    options = {
      systemd.services = mkOption { type = types.attrsOf (types.submodule unitModule); default = { }; };
      users.users = mkOption { type = types.attrsOf (types.submodule userModule); default = { }; };
      users.groups = mkOption { type = types.attrsOf (types.attrsOf types.int); default = { }; };
      environment.etc = mkOption { type = types.attrsOf (types.submodule etcModule); default = { }; };
      environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
      networking.hostName = mkOption { type = types.strMatching "[a-z0-9-]+"; default = "nixos"; };
      networking.firewall.enable = mkEnableOption "the firewall";
      networking.firewall.allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
      boot.kernelParams = mkOption { type = types.listOf types.str; default = [ ]; };
      boot.kernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; internal = true; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      system.stateVersion = mkOption { type = types.str; default = "23.05"; };
      system.toplevel = mkOption { type = types.package; readOnly = true; };
    };
    config = {
      boot.kernelParams = mkBefore [ "console=ttyS0" ];
      environment.systemPackages = [ pkgs.perl pkgs.zlib ];
      environment.etc.hostname.text = config.networking.hostName + "\n";
      environment.etc."systemd/units".text = lib.concatStringsSep "\n"
        (lib.mapAttrsToList (n: u: "${n}: ${u.unitText}") (lib.filterAttrs (n: u: u.enable) config.systemd.services));
      environment.etc.passwd.text = lib.concatMapStringsSep "\n"
        (u: "${u.name}:x:${if u.uid == null then "-" else str u.uid}:${u.group}:${u.home}:${toString u.shell}")
        (lib.attrValues config.users.users);
      system.toplevel = mkDerivation {
        pname = "nixos-system-${config.networking.hostName}"; version = config.system.stateVersion;
        buildInputs = config.environment.systemPackages
          ++ lib.mapAttrsToList (n: e: e.source) (lib.filterAttrs (n: e: e.enable) config.environment.etc);
        kernelParams = lib.concatStringsSep " " config.boot.kernelParams;
        firewall = lib.concatMapStringsSep "," str config.networking.firewall.allowedTCPPorts;
        failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
      };
    };
  };

  # --------------------------------------------------------- service modules
  levels = [ "debug" "info" "warn" "error" ];
  serviceModule = i: { config, pkgs, lib, ... }:
    let
      name = "svc${str i}";
      cfg = config.services.${name};
    in {
      options.services.${name} = {
        enable = mkEnableOption "service ${name}";
        package = mkOption {
          type = types.package;
          default = pkgs."pkg${str (lib.mod (i * 7) packages)}";
          defaultText = lib.literalExpression "pkgs.pkg${str i}";
          description = "The package ${name} runs.";
        };
        port = mkOption { type = types.port; default = 10000 + i; description = "Port."; };
        user = mkOption { type = types.str; default = name; };
        logLevel = mkOption { type = types.enum levels; default = "info"; };
        openFirewall = mkOption { type = types.bool; default = false; };
        extraArgs = mkOption { type = types.listOf types.str; default = [ ]; };
        extraConfig = mkOption { type = types.lines; default = ""; };
        settings = mkOption {
          type = types.attrsOf (types.oneOf [ types.str types.int types.bool ]);
          default = { };
        };
        instances = mkOption {
          default = { };
          type = types.attrsOf (types.submodule ({ name, ... }: {
            options = {
              enable = mkOption { type = types.bool; default = true; };
              port = mkOption { type = types.nullOr types.port; default = null; };
              args = mkOption { type = types.listOf types.str; default = [ ]; };
              label = mkOption { type = types.str; default = name; };
            };
          }));
        };
      };

      config = mkIf cfg.enable (mkMerge [
        {
          assertions = [{ assertion = cfg.port > 1024 || cfg.user == "root"; message = "${name}: port"; }];
          services.${name}.settings = { log_level = cfg.logLevel; port = cfg.port; };
          users.users.${cfg.user} = { isSystemUser = true; group = name; uid = 1000 + i; home = "/var/lib/${name}"; };
          users.groups.${name}.gid = 1000 + i;
          systemd.services.${name} = {
            description = "Service ${name}";
            wantedBy = [ "multi-user.target" ];
            after = [ "network.target" ] ++ lib.optional (i > 0) "svc${str (i - 1)}.service";
            environment = { HOME = "/var/lib/${name}"; PKG = cfg.package; };
            path = [ cfg.package pkgs.zlib ];
            serviceConfig = {
              User = cfg.user;
              ExecStart = "${cfg.package}/bin/${name} ${lib.escapeShellArgs cfg.extraArgs}";
              Restart = "always";
              RestartSec = lib.mod i 5 + 1;
              DynamicUser = false;
              ReadWritePaths = [ "/var/lib/${name}" "/run/${name}" ];
            };
            script = "exec ${cfg.package}/bin/${name}";
            preStart = lib.concatStringsSep "\n" (lib.mapAttrsToList
              (n: inst: "mkdir -p /run/${name}/${inst.label}") (lib.filterAttrs (n: inst: inst.enable) cfg.instances));
          };
          environment.etc."${name}/${name}.conf".text = lib.generators.toINI { } {
            main = cfg.settings;
            instances = lib.mapAttrs (n: inst: toString (if inst.port == null then cfg.port else inst.port)) cfg.instances;
          } + cfg.extraConfig;
          environment.systemPackages = [ cfg.package ];
        }
        (mkIf cfg.openFirewall { networking.firewall.allowedTCPPorts = [ cfg.port ]; })
        (mkIf (cfg.logLevel == "debug") {
          boot.kernelParams = mkAfter [ "${name}.debug=1" ];
          warnings = [ "${name} runs with debug logging" ];
        })
      ]);
    };

  # ---------------------------------------------------------------- the host
  hostModule = { config, lib, pkgs, ... }: {
    networking.hostName = "bench-host";
    networking.firewall.enable = true;
    boot.kernelParams = [ "quiet" (mkOrder 2000 "last=1") ];
    boot.kernelModules = [ "kvm-intel" ];
    services = builtins.listToAttrs (builtins.genList (j:
      let i = lib.mod (j * 5) services; in {
        name = "svc${str i}";
        value = mkMerge [
          { enable = true; }
          (mkIf (lib.mod j 2 == 0) { openFirewall = true; })
          (mkIf (lib.mod j 4 == 1) { logLevel = mkForce "debug"; })
          (mkIf (lib.mod j 3 == 0) { port = mkForce (20000 + j); })
          { extraConfig = mkBefore "# host ${str j}\n"; extraArgs = [ "--verbose" ]; }
          { extraConfig = "[extra]\nvalue=${str j}\n"; }
          (mkIf (lib.mod j 5 == 0) {
            instances = lib.genAttrs [ "a" "b" "c" ] (n: { port = mkDefault (30000 + j); args = [ n ]; });
            settings.workers = j;
          })
        ];
      }) enabled);
    users.users.root = { uid = 0; home = "/root"; group = "root"; shell = pkgs.perl; };
    environment.systemPackages = [ pkgs.pkg7 pkgs.python ];
  };

  eval = lib.evalModules {
    modules = [ coreModule hostModule { _module.args.pkgs = pkgs; } ]
      ++ builtins.genList serviceModule services;
  };
  config = eval.config;
  shown = {
    inherit (config) networking boot users warnings;
    systemd = lib.mapAttrs (n: u: { inherit (u) description after unitText serviceConfig; }) config.systemd.services;
    etc = lib.mapAttrs (n: e: { inherit (e) target text; source = e.source.drvPath; }) config.environment.etc;
    packages = map (p: p.name) config.environment.systemPackages;
    services = lib.mapAttrs (n: s: removeAttrs s [ "package" ]) config.services;
  };
  json = builtins.toJSON shown;
in
if full then shown else {
  toplevel = config.system.toplevel.drvPath;
  configHash = builtins.hashString "sha256" json;
  configBytes = builtins.stringLength json;
  # The whole package set, as a package set's evaluation would walk it.
  pkgsHash = builtins.hashString "sha256" (toString (lib.mapAttrsToList
    (n: p: if p ? drvPath then p.drvPath else "") (removeAttrs pkgs [ "lib" "mkDerivation" "newScope" "callPackage" "overrideScope" "packages" ])));
}
