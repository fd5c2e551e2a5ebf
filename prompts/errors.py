"""The exceptions of the ``prompts`` package: one root, :class:`PromptError`.

Rule violations (:class:`SpecError`, :class:`VariableError`) are also ``ValueError``\\ s,
because pydantic turns a ``ValueError`` raised in a validator into a field error with
its location; callers that do not care which rule failed catch :class:`PromptError`.
"""

from __future__ import annotations


class PromptError(Exception):
    """Base of every failure the prompt kernel reports."""


class SpecError(PromptError, ValueError):
    """One or more rule violations; ``problems`` holds ``(field, message)`` pairs.

    ``field`` is relative to the model that raised (``""`` for the value itself), so the
    loader can prefix it with the location pydantic reports.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))


class VariableError(PromptError, ValueError):
    """A variable's value breaks a rule of its declaration.

    ``rule`` is the declaration key that failed (``required``, ``type``, ``max_length``,
    ``pattern``, ``enum``, ``minimum``, ``maximum``, ``min_length``, ``unknown`` for a
    value the prompt does not declare, ``text`` for characters that are not text: NUL or
    a lone UTF-16 surrogate).
    """

    def __init__(self, variable: str, rule: str, message: str) -> None:
        super().__init__(f"variable {variable!r}: {rule}: {message}")
        self.variable = variable
        self.rule = rule
        self.message = message


class TemplateProblem(PromptError, ValueError):
    """A template is unusable; ``line`` is set for syntax errors."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


class RenderError(PromptError):
    """A variant could not be rendered with the given values.

    ``message`` is the whole story, for the template's author (logs, ``promptlab prompts
    render``). What may be told to a caller, who has not seen the template: ``reason``
    (what went wrong, in words that quote no template text), ``part`` (``user`` or
    ``system``), ``line`` (in that template) and ``variables`` (the declared variables
    the failing line reads, directly or through a loop variable), when known.
    """

    def __init__(
        self,
        prompt_id: str,
        variant: str,
        message: str,
        *,
        reason: str = "the template failed",
        part: str | None = None,
        line: int | None = None,
        variables: tuple[str, ...] = (),
    ) -> None:
        super().__init__(f"prompt {prompt_id!r}, variant {variant!r}: {message}")
        self.prompt_id = prompt_id
        self.variant = variant
        self.message = message
        self.reason = reason
        self.part = part
        self.line = line
        self.variables = variables


class FeedbackValueError(PromptError, ValueError):
    """A feedback value the prompt's ``[reward]`` cannot turn into a reward in 0..1;
    ``scale`` is the ``(min, max)`` it had to fit."""

    def __init__(self, message: str, scale: tuple[float, float]) -> None:
        super().__init__(message)
        self.scale = scale
