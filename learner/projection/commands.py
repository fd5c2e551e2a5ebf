"""Carrying out operator commands (promote, rollback, pause) against the learner state.

A command is judged at its own position in the stream, against the state the
projection has built up to that point, and answered by exactly one event: the
decision it asked for, or :class:`CommandRejected` saying why not. The answer's id is
derived from the command's id and its time is the command's time, so a retried batch
or a replay produces the very same answer (JetStream then drops the copy).
"""

from __future__ import annotations

from typing import Any

from events.models import (
    BaseEvent,
    CommandRejected,
    ExplorationPaused,
    ExplorationResumed,
    PauseCommand,
    PromoteCommand,
    RollbackCommand,
    VariantPromoted,
    VariantRolledBack,
    deterministic_event_id,
)
from learner.projection.state import LearnerState

Command = PromoteCommand | RollbackCommand | PauseCommand


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

    if command.paused == prompt.paused:
        state_word = "paused" if prompt.paused else "not paused"
        return reject(f"exploration of {command.prompt_id!r} is already {state_word}")
    kind = ExplorationPaused if command.paused else ExplorationResumed
    return kind(prompt_id=command.prompt_id, actor=command.actor, reason=command.reason, **common)
