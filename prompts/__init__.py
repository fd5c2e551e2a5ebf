"""promptlab: prompts."""
