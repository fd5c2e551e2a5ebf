"""Registrations: variants, their versions, and prompts defined at run time.

A ``VariantRegistered`` event adds a variant (a challenger, or the champion when the
prompt has none or its file names it and no operator chose another), records its
version in ``variant_versions`` once, and starts its test. A variant is (prompt, name,
version): when a registration carries a new version of a known name, the old version's
evidence moves, in this transaction, to a retired arm ``<name>@<old version>``
(:func:`new_version`) and the name starts again with none; calls of the old version
that finish later still count for that arm (:func:`arm_name`). Offline search
candidates are lineage only and never become arms.

A ``PromptRegistered`` event defines a prompt created through the admin API: its reward
rule and promotion overrides apply from its stream position on
(:mod:`learner.projection.definitions`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from promptlab.events.models import PromptRegistered, VariantRegistered
from promptlab.learner.projection.batch import Batch, event_ms
from promptlab.learner.projection.definitions import definition_row
from promptlab.learner.projection.evidence import stop_test
from promptlab.learner.projection.handlers.decisions import end_probation, start_tests
from promptlab.learner.projection.rows import VariantRow

log = logging.getLogger(__name__)


def prompt_registered(b: Batch, seq: int, ev: PromptRegistered) -> None:
    """Take a prompt's run-time definition (ignored, and logged, when refused)."""
    if (defined := definition_row(seq, event_ms(ev), ev)) is not None:
        b.p.define(defined[0])
        b.definition_rows[ev.prompt_id] = defined[1]
        b.result.touched.add(ev.prompt_id)


def variant_registered(b: Batch, seq: int, ev: VariantRegistered) -> None:
    """Add a variant, take a new version of one, or refresh one registered again."""
    if ev.source == "offline":  # an offline search candidate: lineage only, never routed
        return
    b.version_rows.setdefault(
        (ev.prompt_id, ev.variant, ev.version),
        {
            "prompt_id": ev.prompt_id,
            "variant": ev.variant,
            "version": ev.version,
            "sequence": seq,
            "occurred_ms": event_ms(ev),
            "origin": ev.origin,
            "parent": ev.parent,
            "strategy": ev.strategy,
            "model": ev.model,
            "lifecycle": ev.status,
            "params": json.dumps(ev.params, sort_keys=True),
            "system": ev.system,
            "template": ev.template,
        },
    )
    key = (ev.prompt_id, ev.variant)
    prompt = b.prompt(ev.prompt_id, seq)
    existing = b.state.variants.get(key)
    if existing is None:
        b.state.variants[key] = VariantRow(
            prompt_id=ev.prompt_id,
            variant=ev.variant,
            version=ev.version,
            model=ev.model,
            origin=ev.origin,
            parent=ev.parent,
            strategy=ev.strategy,
            status="challenger",
            registered_sequence=seq,
            lifecycle=ev.status,
        )
    elif existing.version != ev.version:
        new_version(b, seq, ev, existing)
    else:
        # The same version registered again (a restart) keeps what operators made
        # of it, unless it was still a draft; a new version takes its file's status.
        if existing.lifecycle == "draft":
            existing.lifecycle = ev.status
        existing.model = ev.model
    b.dirty_variants.add(key)
    if prompt.champion is None or (ev.champion and not prompt.champion_explicit):
        if prompt.champion is not None and prompt.champion != ev.variant:
            b.set_status(ev.prompt_id, prompt.champion, "challenger")
        prompt.champion = ev.variant
        prompt.champion_explicit = ev.champion
        b.set_status(ev.prompt_id, ev.variant, "champion")
    start_tests(b, ev.prompt_id, seq)


def new_version(b: Batch, seq: int, ev: VariantRegistered, row: VariantRow) -> None:
    """A changed variant under the same name: a new version with no evidence.

    The old version's evidence moves, in this transaction, to the retired arm
    ``<name>@<old version>`` (counters, minute buckets, latency histogram and its
    executions, so late feedback for them lands there too); the name continues with
    the new version at zero. The change is logged and recorded in ``decisions``.
    """
    prompt_id, name = ev.prompt_id, ev.variant
    archived = f"{name}@{row.version}"
    if (prompt_id, archived) in b.state.variants:
        archived = f"{archived}.{seq}"  # the same old content archived twice
    b.state.variants[(prompt_id, archived)] = VariantRow(
        prompt_id=prompt_id,
        variant=archived,
        version=row.version,
        model=row.model,
        origin=row.origin,
        parent=row.parent,
        strategy=row.strategy,
        status="retired",
        registered_sequence=row.registered_sequence,
    )
    b.dirty_variants.add((prompt_id, archived))
    _rekey(b.arms, prompt_id, name, archived)
    _rekey(b.minutes, prompt_id, name, archived)
    _rekey(b.hist, prompt_id, name, archived)
    b.values.rekey(prompt_id, name, archived)
    for ex in b.execs.values():
        if ex.prompt_id == prompt_id and ex.variant == name:
            ex.variant = archived
            if ex.new_row is not None:
                ex.new_row["variant"] = archived
    b.renames.append((prompt_id, name, archived))
    stop_test(row)  # the new version is tested afresh
    prompt = b.state.prompts[prompt_id]
    if prompt.probation_variant == name:  # the record was of the old version
        end_probation(b, prompt_id, prompt)
        prompt.previous_champion = None
        prompt.clear_probation()
    summary = (
        f"{name}: version {row.version} -> {ev.version} ({ev.origin}); the new version "
        f"starts with no evidence, the old one is retired as {archived}"
    )
    log.warning("prompt %s: %s", prompt_id, summary)
    b.decision_rows.append(
        {
            "sequence": seq,
            "event_id": ev.event_id,
            "prompt_id": prompt_id,
            "type": "variant.version_changed",
            "variant": name,
            "previous": archived,
            "reason": "new version",
            "actor": ev.origin,
            "summary": summary,
            "evidence": None,
            "occurred_ms": event_ms(ev),
        }
    )
    row.version, row.model = ev.version, ev.model
    row.origin, row.parent, row.strategy = ev.origin, ev.parent, ev.strategy
    row.lifecycle = ev.status


def arm_name(b: Batch, prompt_id: str, variant: str, version: str | None) -> str:
    """The arm an execution counts for: an old version's calls finishing after its
    successor was registered count for the retired ``<name>@<version>``."""
    if version is None:
        return variant
    row = b.state.variants.get((prompt_id, variant))
    if row is None or row.version == version:
        return variant
    archived = f"{variant}@{version}"
    return archived if (prompt_id, archived) in b.state.variants else variant


def _rekey(table: dict[Any, Any], prompt_id: str, name: str, archived: str) -> None:
    """Move a batch's accumulators keyed ``(prompt, name, ...)`` to ``(prompt, archived, ...)``."""
    for key in [k for k in table if k[0] == prompt_id and k[1] == name]:
        table[(prompt_id, archived, *key[2:])] = table.pop(key)
