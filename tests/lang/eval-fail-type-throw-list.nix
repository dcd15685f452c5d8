throw [ ]
