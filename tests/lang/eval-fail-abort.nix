abort "message"
