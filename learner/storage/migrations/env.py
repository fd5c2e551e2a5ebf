"""Alembic's environment for the learner's store: run on the connection the store passes
(:func:`learner.storage.migrations.migrate`), never on a URL of its own."""

from __future__ import annotations

from alembic import context

from promptlab.learner.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=context.config.attributes.get("schema"),
)
with context.begin_transaction():
    context.run_migrations()
