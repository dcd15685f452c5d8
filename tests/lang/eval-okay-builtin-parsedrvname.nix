map builtins.parseDrvName [ "hello-2.10" "nix-2.8.0pre1" "foo" "foo-bar-1.0" "foo-bar" "a-1-2" "-1.0" "foo-" "x-y-z" "perl-Foo-Bar-1.2" "a-b2" ]
