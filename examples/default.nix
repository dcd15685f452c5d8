# A small package set that builds offline with nothing but nivis (or CppNix)
# and a static busybox (Debian: busybox-static). The first package copies the
# host's busybox into the store; it is the only one that looks outside the
# store, through the sandbox path /bin/sh, so build with
#
#   nix-build examples -A hello --option sandbox-paths /bin/sh=/usr/bin/busybox
#
# (`examples/run` does this). Every other package uses the copy in the store,
# but for hello-c, which also needs the host's gcc (see there).
{ system ? builtins.currentSystem }:
let
  # busybox as a package: bin/busybox plus one symlink per applet we use.
  busybox = derivation {
    name = "busybox-static";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" ''
      mkdir -p $out/bin
      cp /bin/sh $out/bin/busybox
      for applet in sh cat echo mkdir cp ln chmod sed tr wc sort uniq head printf; do
        ln -s busybox $out/bin/$applet
      done
    '' ];
  };

  # A package from a shell script: `script` runs with busybox on PATH, in an
  # empty build directory, and must create $out (and any other outputs).
  mkPackage = { name, script, outputs ? [ "out" ], buildInputs ? [ ] }: derivation {
    inherit name system outputs;
    builder = "${busybox}/bin/sh";
    PATH = builtins.concatStringsSep ":" (map (p: "${p}/bin") ([ busybox ] ++ buildInputs));
    args = [ "-c" ("set -e\n" + script) ];
  };

  # An executable shell script `bin/<name>` with a shebang into the store.
  writeScriptBin = name: text: mkPackage {
    inherit name;
    script = ''
      mkdir -p $out/bin
      cat > $out/bin/${name} <<'NIVIS_EOF'
      #!${busybox}/bin/sh
      ${text}
      NIVIS_EOF
      chmod 555 $out/bin/${name}
    '';
  };
in rec {
  inherit busybox;

  # hello world.
  hello = writeScriptBin "hello" ''
    echo "Hello, world! (built by a Nix-compatible builder)"
  '';

  # A shell-script tool that uses other store paths at run time.
  wordfreq = writeScriptBin "wordfreq" ''
    export PATH=${busybox}/bin
    tr -cs 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | sort | uniq -c | sort -rn | head -n "''${1:-10}"
  '';

  # One derivation, three outputs: the program, its documentation, a man page.
  greeter = mkPackage {
    name = "greeter";
    outputs = [ "out" "doc" "man" ];
    script = ''
      mkdir -p $out/bin $doc/share/doc/greeter $man/share/man/man1
      printf '#!${busybox}/bin/sh\necho "Greetings from $out"\n' > $out/bin/greeter
      chmod 555 $out/bin/greeter
      echo "greeter prints a greeting. Its program is in $out." > $doc/share/doc/greeter/README
      printf '.TH GREETER 1\n.SH NAME\ngreeter \\- greet\n' > $man/share/man/man1/greeter.1
    '';
  };

  # hello world in C, compiled by the host's gcc and linked statically: the
  # compiler is seen only through the sandbox paths (/usr, /lib, /lib64), and the
  # program refers to nothing outside the store (nothing at all, being static).
  # Build with
  #   --option sandbox-paths '/bin/sh=/usr/bin/busybox /usr /lib /lib64'
  hello-c = mkPackage {
    name = "hello-c";
    script = ''
      export PATH=$PATH:/usr/bin
      cp ${./hello-c/hello.c} hello.c
      mkdir -p $out/bin
      gcc -O2 -static -o $out/bin/hello-c hello.c
    '';
  };

  # A chain: each stage uses the previous one at build time and refers to it.
  stage1 = mkPackage { name = "stage1"; script = "mkdir $out; echo one > $out/log"; };
  stage2 = mkPackage { name = "stage2"; script = "mkdir $out; cat ${stage1}/log > $out/log; echo two >> $out/log; ln -s ${stage1} $out/previous"; };
  stage3 = mkPackage {
    name = "stage3";
    buildInputs = [ hello ];
    script = ''
      mkdir -p $out/bin
      cat ${stage2}/log > $out/log
      hello >> $out/log
      echo three >> $out/log
      printf '#!${busybox}/bin/sh\ncat %s/log\n' $out > $out/bin/show-chain
      chmod 555 $out/bin/show-chain
    '';
  };
}
