"${./no-such-file-anywhere}"
