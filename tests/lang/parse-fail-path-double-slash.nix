/foo//bar
