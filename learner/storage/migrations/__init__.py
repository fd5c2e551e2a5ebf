"""Schema migrations of the learner's store, with Alembic.

:func:`migrate` brings any store to the schema of this version, inside the caller's
transaction:

* a new, empty database: the tables are created from :mod:`learner.storage.schema` and
  stamped with the newest revision (Alembic's "create from scratch, then stamp");
* a store from before migrations existed (it has the learner's tables but no
  ``alembic_version``): the columns earlier versions added at start-up are added, the
  tables of the baseline created where missing, the store stamped at the baseline, and the
  revisions after it applied;
* a store with a revision: the revisions after it are applied.

A schema change is a new file in ``versions/`` (``alembic revision`` with
``script_location`` pointing here, or by hand) plus the change in ``schema.py``.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from promptlab.learner.storage import schema as t

BASELINE = "0001"
"""The schema of the first version with migrations (every table ``schema.py`` then had)."""

BASELINE_TABLES = (
    "projection_position",
    "prompt_state",
    "variants",
    "variant_versions",
    "prompt_definitions",
    "executions",
    "pending_feedback",
    "arm_stats",
    "minute_buckets",
    "latency_histogram",
    "variable_values",
    "decisions",
    "outbox",
    "learner_counters",
    "learner_lease",
)


def _config(conn: Connection, schema: str | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files(__package__)))
    config.attributes["connection"] = conn
    config.attributes["schema"] = schema
    return config


def current_revision(conn: Connection, schema: str | None) -> str | None:
    """The store's revision (None: new, or from before migrations)."""
    context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
    return context.get_current_revision()


def migrate(conn: Connection, schema: str | None) -> None:
    """Bring the store on ``conn`` to the newest revision (see the module docstring)."""
    config = _config(conn, schema)
    if current_revision(conn, schema) is None:
        present = set(inspect(conn).get_table_names(schema=schema))
        if "projection_position" not in present:
            t.metadata.create_all(conn)
            command.stamp(config, "head")
            return
        baseline = [t.metadata.tables[name] for name in BASELINE_TABLES]
        t.metadata.create_all(conn, tables=baseline)
        _add_missing_columns(conn, schema)
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")


def _add_missing_columns(conn: Connection, schema: str | None) -> None:
    """Columns that versions before migrations added to a store at start-up; each has a
    server default, so old rows stay valid."""
    inspector = inspect(conn)
    for table in (t.variants, t.prompt_state):
        present = {c["name"] for c in inspector.get_columns(table.name, schema=schema)}
        for column in table.columns:
            if column.name not in present and column.server_default is not None:
                kind = column.type.compile(dialect=conn.dialect)
                default: Any = column.server_default.arg  # type: ignore[attr-defined]
                name = table.name if schema is None else f'"{schema}".{table.name}'
                conn.execute(
                    text(
                        f"ALTER TABLE {name} ADD COLUMN {column.name} {kind} "
                        f"NOT NULL DEFAULT '{default}'"
                    )
                )
