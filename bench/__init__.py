"""promptlab benchmarks: plain scripts that print figures (``make bench``)."""
