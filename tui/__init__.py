"""promptlab: tui."""
