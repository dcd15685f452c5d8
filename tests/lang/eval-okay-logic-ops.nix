[ (true && false) (true || false) (false -> false) (true -> false) (!true) (!false)
  (false && throw "x") (true || throw "x") (false -> throw "x") ]
