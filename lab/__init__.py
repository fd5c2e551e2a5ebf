"""promptlab: lab."""
