"""Version history of a prompt's variants, and the diff between two versions.

A variant is (prompt, name, version = content hash); every version it ever had is a
``variant_versions`` row written when it was first registered (from a file, the admin
API or a mutation). A replaced version's evidence stays with it (the learner moves it to the
retired arm ``<name>@<version>``), so each version's executions and reward are its own,
from the kept per-arm aggregates (retention does not erase them).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from promptlab.learner.storage import schema as t
from promptlab.learner.storage.schema import MICRO

if TYPE_CHECKING:
    from promptlab.learner.storage.store import Store


class VersionNotFound(LookupError):
    """No version of that variant matches (the message lists the known ones)."""


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One version of one variant."""

    variant: str
    number: int
    """1 for the variant's first version, 2 for the next, ..."""
    version: str
    registered_at: datetime
    origin: str
    parent: str | None
    strategy: str | None
    model: str
    status: str
    """The current version: its lifecycle (draft/active/deprecated/archived) or the
    learner's ``retired``; an older one: ``replaced``."""
    current: bool
    executions: int
    rewarded: int
    reward_mean: float | None
    params: dict[str, Any]
    system: str | None
    template: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["registered_at"] = self.registered_at.isoformat()
        return d


async def variant_history(
    store: Store, prompt_id: str, variant: str | None = None
) -> list[VersionEntry]:
    """Every version of every variant of ``prompt_id`` (or of one), oldest first."""
    vv, v, a = t.variant_versions, t.variants, t.arm_stats
    query = select(vv).where(vv.c.prompt_id == prompt_id)
    if variant is not None:
        query = query.where(vv.c.variant == variant)
    async with store.engine.connect() as conn:
        rows = [r._mapping for r in await conn.execute(query.order_by(vv.c.sequence))]
        arms = list(
            await conn.execute(
                select(v.c.variant, v.c.version, v.c.status, v.c.lifecycle).where(
                    v.c.prompt_id == prompt_id
                )
            )
        )
        totals = {
            r.variant: (int(r.executions), int(r.rewarded), int(r.reward_micro))
            for r in await conn.execute(
                select(a.c.variant, a.c.executions, a.c.rewarded, a.c.reward_micro).where(
                    a.c.prompt_id == prompt_id
                )
            )
        }
    current = {r.variant: r for r in arms}
    numbers: dict[str, int] = {}
    entries: list[VersionEntry] = []
    for row in rows:
        name, version = row["variant"], row["version"]
        numbers[name] = numbers.get(name, 0) + 1
        # A replaced version's evidence lives on under the retired arm <name>@<version>.
        mine = [
            r.variant
            for r in arms
            if r.version == version and (r.variant == name or r.variant.startswith(name + "@"))
        ]
        n = sum(totals.get(m, (0, 0, 0))[0] for m in mine)
        rewarded = sum(totals.get(m, (0, 0, 0))[1] for m in mine)
        reward = sum(totals.get(m, (0, 0, 0))[2] for m in mine)
        now = current.get(name)
        is_current = now is not None and now.version == version
        if now is None or not is_current:
            status = "replaced"
        elif now.status == "retired":
            status = "retired"
        else:
            status = str(now.lifecycle)
        entries.append(
            VersionEntry(
                variant=name,
                number=numbers[name],
                version=version,
                registered_at=datetime.fromtimestamp(row["occurred_ms"] / 1000, UTC),
                origin=row["origin"],
                parent=row["parent"],
                strategy=row["strategy"],
                model=row["model"],
                status=status,
                current=is_current,
                executions=n,
                rewarded=rewarded,
                reward_mean=reward / MICRO / rewarded if rewarded else None,
                params=json.loads(row["params"]),
                system=row["system"],
                template=row["template"],
            )
        )
    return entries


def find_version(entries: list[VersionEntry], variant: str, ref: str) -> VersionEntry:
    """The version ``ref`` of ``variant``: its number (``1``, ``2``...) or a hash prefix."""
    mine = [e for e in entries if e.variant == variant]
    for e in mine:
        if ref == str(e.number) or (len(ref) >= 4 and e.version.startswith(ref)):
            return e
    known = ", ".join(f"{e.number}={e.version[:12]}" for e in mine) or "none"
    raise VersionNotFound(f"no version {ref!r} of variant {variant!r} (known: {known})")


def _lines(entry: VersionEntry) -> list[str]:
    out = [f"model: {entry.model}"]
    if entry.system is not None:
        out += ["system:", *entry.system.splitlines()]
    out += ["template:", *entry.template.splitlines()]
    out += ["params:", *json.dumps(entry.params, sort_keys=True, indent=2).splitlines()]
    return out


def diff_versions(old: VersionEntry, new: VersionEntry) -> str:
    """A unified diff of model, system, template and params (empty when identical)."""
    label = "{0.variant} v{0.number} ({1})"
    return "\n".join(
        difflib.unified_diff(
            _lines(old),
            _lines(new),
            fromfile=label.format(old, old.version[:12]),
            tofile=label.format(new, new.version[:12]),
            lineterm="",
        )
    )
