"""Baseline: the schema of the first version with migrations.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to do: a store at the baseline was created (or completed) by
    :func:`learner.storage.migrations.migrate` from the baseline tables."""


def downgrade() -> None:
    """The baseline is the first revision."""
