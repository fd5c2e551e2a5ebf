"""promptlab: sidecar."""
