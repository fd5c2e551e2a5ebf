"""Carrying out operator commands (promote, rollback, pause, lifecycle) against the
learner state.

A command is judged at its own position in the stream, against the state the
projection has built up to that point, and answered by exactly one event: the
decision it asked for, or :class:`CommandRejected` saying why not. The answer's id is
derived from the command's id and its time is the command's time, so a retried batch
or a replay produces the very same answer (JetStream then drops the copy).
"""

from __future__ import annotations

from typing import Any

from promptlab.events.kinds import VariantLifecycle
from promptlab.events.models import (
    BaseEvent,
    CommandRejected,
    ExplorationPaused,
    ExplorationResumed,
    LifecycleCommand,
    PauseCommand,
    PromoteCommand,
    RollbackCommand,
    VariantLifecycleChanged,
    VariantPromoted,
    VariantRolledBack,
    deterministic_event_id,
)
from promptlab.learner.projection.rows import LearnerState, VariantRow

Command = PromoteCommand | RollbackCommand | PauseCommand | LifecycleCommand

TRANSITIONS: dict[VariantLifecycle, frozenset[VariantLifecycle]] = {
    "draft": frozenset({"active", "archived"}),
    "active": frozenset({"deprecated", "archived"}),
    "deprecated": frozenset({"active", "archived"}),
    "archived": frozenset({"active", "deprecated"}),
}
"""Lifecycle moves an operator may ask for. Nothing goes back to ``draft``: a draft is
what a prompt file says before its variant ever ran."""


def answer_id(command: BaseEvent) -> str:
    """Deterministic id of the event that answers ``command``."""
    return deterministic_event_id("command-answer", command.event_id)


def carry_out(command: Command, state: LearnerState) -> BaseEvent:
    """The event that answers ``command`` given the current ``state``."""
    common: dict[str, Any] = {"event_id": answer_id(command), "occurred_at": command.occurred_at}
    prompt = state.prompts.get(command.prompt_id)

    def reject(reason: str) -> CommandRejected:
        return CommandRejected(
            command_id=command.event_id, prompt_id=command.prompt_id, reason=reason, **common
        )

    if prompt is None:
        return reject(f"unknown prompt {command.prompt_id!r}")
    variants = state.variants_of(command.prompt_id)

    if isinstance(command, PromoteCommand):
        target = variants.get(command.variant)
        if target is None:
            known = ", ".join(variants) or "none"
            return reject(
                f"unknown variant {command.variant!r} of prompt {command.prompt_id!r} (known: {known})"
            )
        if prompt.champion == command.variant:
            return reject(f"{command.variant!r} is already the champion of {command.prompt_id!r}")
        if target.status == "retired":
            return reject(
                f"{command.variant!r} was retired by the learner and cannot be promoted"
                " (register a new version to try it again)"
            )
        if target.lifecycle != "active":
            return reject(
                f"{command.variant!r} is {target.lifecycle} and cannot be promoted"
                f" (activate it first: promptlab prompts activate {command.prompt_id}"
                f" {command.variant})"
            )
        return VariantPromoted(
            prompt_id=command.prompt_id,
            variant=command.variant,
            previous_champion=prompt.champion,
            reason="manual",
            actor=command.actor,
            **common,
        )

    if isinstance(command, RollbackCommand):
        if prompt.previous_champion is None or prompt.champion is None:
            return reject(
                f"nothing to roll back: {command.prompt_id!r} has no earlier champion to restore"
            )
        return VariantRolledBack(
            prompt_id=command.prompt_id,
            variant=prompt.champion,
            restored=prompt.previous_champion,
            reason="manual",
            actor=command.actor,
            **common,
        )

    if isinstance(command, LifecycleCommand):
        target = variants.get(command.variant)
        if target is None:
            known = ", ".join(variants) or "none"
            return reject(
                f"unknown variant {command.variant!r} of prompt {command.prompt_id!r} (known: {known})"
            )
        refusal = lifecycle_refusal(target, command.status, champion=prompt.champion)
        if refusal is not None:
            return reject(refusal)
        return VariantLifecycleChanged(
            prompt_id=command.prompt_id,
            variant=command.variant,
            status=command.status,
            previous=target.lifecycle,
            actor=command.actor,
            reason=command.reason,
            **common,
        )

    if command.paused == prompt.paused:
        state_word = "paused" if prompt.paused else "not paused"
        return reject(f"exploration of {command.prompt_id!r} is already {state_word}")
    kind = ExplorationPaused if command.paused else ExplorationResumed
    return kind(prompt_id=command.prompt_id, actor=command.actor, reason=command.reason, **common)


def lifecycle_refusal(
    variant: VariantRow, status: VariantLifecycle, *, champion: str | None
) -> str | None:
    """Why ``variant`` may not move to ``status`` (None: it may)."""
    name, current = variant.variant, variant.lifecycle
    if current == status:
        return f"{name!r} is already {status}"
    if status not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current]))
        return f"{name!r} cannot go from {current} to {status} (from {current}: {allowed})"
    if name == champion:
        return f"{name!r} is the champion: promote another variant before it becomes {status}"
    if status == "active" and variant.status == "retired":
        return (
            f"{name!r} was retired by the learner; register a new version instead of"
            " activating this one"
        )
    return None
