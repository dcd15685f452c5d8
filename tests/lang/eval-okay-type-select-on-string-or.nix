"s".a or "fallback"
