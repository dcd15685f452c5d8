builtins.fromTOML ''
# top comment

  a   =   1   # trailing
	 b	=	"x"
[ t ]
 c = true
''
