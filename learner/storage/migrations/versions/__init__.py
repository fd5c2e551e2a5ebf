"""One file per revision of the learner's store (Alembic)."""
