[ ''
	no strip tab
	  x
'' ''
  a
	b
'' ]
