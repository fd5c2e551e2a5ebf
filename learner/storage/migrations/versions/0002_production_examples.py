"""Production examples: the ``examples`` table, and a correction's text and a feedback's
comment on ``pending_feedback`` (feedback that waits for its execution keeps them).

Idempotent: a store from before migrations gets its baseline tables from the current
schema, so a ``pending_feedback`` created that way already has both columns.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def _schema() -> str | None:
    return op.get_context().version_table_schema


def upgrade() -> None:
    """Add the table and the columns that are missing."""
    schema = _schema()
    inspector = sa.inspect(op.get_bind())
    present = {c["name"] for c in inspector.get_columns("pending_feedback", schema=schema)}
    for name in ("text", "comment"):
        if name not in present:
            op.add_column(
                "pending_feedback", sa.Column(name, sa.Text, nullable=True), schema=schema
            )
    if "examples" not in inspector.get_table_names(schema=schema):
        op.create_table(
            "examples",
            sa.Column("id", sa.String(200), primary_key=True),
            sa.Column("prompt_id", sa.String(200), nullable=False),
            sa.Column("variant", sa.String(200), nullable=False),
            sa.Column("version", sa.String(100), nullable=True),
            sa.Column("variables", sa.Text, nullable=False),
            sa.Column("answer", sa.Text, nullable=False),
            sa.Column("reward", sa.Float, nullable=True),
            sa.Column("source", sa.String(20), nullable=False),
            sa.Column("created_ms", sa.BigInteger, nullable=False),
            sa.Column("subject_hash", sa.String(32), nullable=True),
            sa.Column("comment", sa.Text, nullable=True),
            sa.Column("replaced_answer", sa.Text, nullable=True),
            schema=schema,
        )
        op.create_index(
            "ix_examples_prompt_time", "examples", ["prompt_id", "created_ms"], schema=schema
        )


def downgrade() -> None:
    """Drop them again."""
    schema = _schema()
    op.drop_index("ix_examples_prompt_time", table_name="examples", schema=schema)
    op.drop_table("examples", schema=schema)
    with op.batch_alter_table("pending_feedback", schema=schema) as batch:
        batch.drop_column("comment")
        batch.drop_column("text")
