"p=${{ outPath = "out-value"; }}"
