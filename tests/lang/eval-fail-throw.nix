throw "message"
