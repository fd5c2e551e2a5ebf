"""What the learner publishes for others to read, in JetStream KV: the routing and stats
snapshots every sidecar and the TUI follow (:mod:`.routing`) and each prompt's recent
analytics periods (:mod:`.analytics`)."""
