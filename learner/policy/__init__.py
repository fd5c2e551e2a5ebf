"""The promotion, rollback and retirement policy (pure, seeded) and the simulator that
validates it."""
