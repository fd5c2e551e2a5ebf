"""promptlab: promptlab."""
