"""The TUI's screens: overview of every prompt, one prompt's detail, the confirmation."""
