# __div takes its divisor as a float first.
1 / "a"
