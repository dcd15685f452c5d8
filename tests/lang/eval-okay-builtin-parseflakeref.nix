# builtins.parseFlakeRef (CppNix 2.17): the attribute form of flake references.
map builtins.parseFlakeRef [
  "gitlab:someone/project/v1.2?dir=sub/dir"
  "sourcehut:~user/repo/0f3e1a4c7c9c5a8fd8d0e6b1b0a1c2d3e4f50617"
  "registry-name/some-branch"
  "path:/srv/flakes/one?lastModified=1700000000"
  "git+https://example.org/repo.git?ref=main&submodules=1"
]
