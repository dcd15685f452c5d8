"abc" == "a${"b"}c"
