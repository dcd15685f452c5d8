"${{ __toString = self: { outPath = "via-outpath"; }; }}"
