"""Checking a mutant before it costs a single evaluation call.

A mutant is discarded, with the reason, when it drops a required variable its parent
used, reads a variable the prompt does not declare, breaks the template syntax, or
fails any rule of prompt validation (:meth:`prompts.PromptSpec.with_variant` runs them
all). Duplicates (of the parent or any known candidate) are the search's business: see
:mod:`lab.search.diversity`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from promptlab.lab.mutation.answer import MutantDraft
from promptlab.prompts import PromptSpec, SpecError, VariantSpec
from promptlab.prompts.errors import TemplateProblem
from promptlab.prompts.templates import check_template, template_variables


class MutantRejected(ValueError):
    """A mutant failed validation; the message is the reason shown to the user."""


def validate_mutant(
    prompt: PromptSpec,
    parents: Sequence[VariantSpec],
    draft: MutantDraft,
    *,
    name: str,
    strategy: str,
    generation: int,
) -> VariantSpec:
    """The mutant as a valid :class:`VariantSpec` of ``prompt``; raise :class:`MutantRejected`.

    The first parent gives the model and params; lineage (``parents``, ``strategy``,
    ``generation``) is recorded on the variant.
    """
    parent = parents[0]
    used: set[str] = set()
    for key, source in (("system", draft.system), ("template", draft.template)):
        if source is None:
            continue
        if problems := check_template(source):
            raise MutantRejected(f"{key}: " + "; ".join(problems))
        try:
            used |= template_variables(source)
        except TemplateProblem as exc:  # pragma: no cover - check_template reports it first
            raise MutantRejected(f"{key}: {exc}") from None
    declared = {v.name for v in prompt.variables}
    if undeclared := sorted(used - declared):
        raise MutantRejected(f"uses undeclared variable(s) {', '.join(map(repr, undeclared))}")
    required = {v.name for v in prompt.variables if v.required}
    needed = set().union(*(p.variables_used for p in parents)) & required
    if dropped := sorted(needed - used):
        raise MutantRejected(f"drops required variable(s) {', '.join(map(repr, dropped))}")
    try:
        variant = VariantSpec(
            name=name,
            model=parent.model,
            params=parent.params,
            system=draft.system,
            template=draft.template,
            origin="mutation",
            parent=parent.name,
            parents=tuple(p.name for p in parents),
            strategy=strategy,
            generation=generation,
        )
        prompt.with_variant(variant)
    except (ValidationError, SpecError) as exc:
        raise MutantRejected(f"prompt validation: {_first_errors(exc)}") from None
    return variant


def _first_errors(exc: ValidationError | SpecError) -> str:
    if isinstance(exc, SpecError):
        return str(exc)
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'variant'}: {e['msg']}" for e in exc.errors()[:3]
    )
