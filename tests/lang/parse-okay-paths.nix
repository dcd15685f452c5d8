[ ./a ./a/b.nix ../up /abs/path ~/home/x a/b ./a-b_c.d+e ]
