"""Rendering a variant into chat messages, in a sandbox, compiled once.

Templates come from prompt files, the admin API and LLM-driven mutation, so they run in
a sandbox (:class:`prompts.sandbox.PromptSandbox`: no attribute tricks such as
``''.__class__``, no unbounded repetition or power) with
:class:`~jinja2.StrictUndefined` (a misspelt variable fails loudly instead of rendering
as nothing). Variable values are passed as context only: a value containing
``{{ ... }}`` is text, never evaluated. A declared variable the call left out, which
has no default, is passed as an empty value the template can test
(:func:`prompts.sandbox.absent`).

A failure while rendering is a :class:`RenderError` that says which template (system or
user), which line and which declared variables that line reads, so a caller can be told
which of its values the template could not use without being shown the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Template, TemplateError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError

from promptlab.prompts.errors import RenderError
from promptlab.prompts.limits import DEFAULT_LIMITS, RenderLimitError, RenderLimits
from promptlab.prompts.sandbox import (
    PromptSandbox,
    absent,
    absent_message,
    render,
    template_line,
)
from promptlab.prompts.spec import PromptSpec, VariantSpec
from promptlab.prompts.templates import names_in, parse, template_variables

Message = dict[str, str]


class _Compiled:
    """A variant's templates, compiled; a template without variables is kept as text."""

    __slots__ = ("reads", "system", "user")

    def __init__(self, env: PromptSandbox, variant: VariantSpec, limits: RenderLimits) -> None:
        self.system = (
            self._compile(env, variant.system, limits) if variant.system is not None else None
        )
        self.user = self._compile(env, variant.template, limits)
        self.reads = variant.variables_used

    @staticmethod
    def _compile(env: PromptSandbox, source: str, limits: RenderLimits) -> Template | str:
        template = env.from_string(source)
        # Static text (the usual system message) renders once here, not per call.
        # Without undeclared names the output cannot depend on the context or on
        # globals such as lipsum, so rendering it now gives the same text.
        if not template_variables(source):
            return render(template, {}, limits)
        return template


class Renderer:
    """Renders variants into chat messages; one per process, shared by all prompts.

    Compiled templates are cached by variant version (content hash), so a variant is
    compiled on first use only and an edited variant (new version) is compiled afresh.
    """

    def __init__(self, *, max_cached: int = 2048, limits: RenderLimits = DEFAULT_LIMITS) -> None:
        self.env = PromptSandbox()
        self.limits = limits
        """The bounds of every render (:mod:`prompts.limits`)."""
        self._cache: dict[str, _Compiled] = {}
        self._max_cached = max_cached
        self.compilations = 0
        """How many variants were compiled (a cache hit does not count)."""

    def _compiled(self, prompt: PromptSpec, variant: VariantSpec) -> _Compiled:
        compiled = self._cache.get(variant.version)
        if compiled is None:
            try:
                compiled = _Compiled(self.env, variant, self.limits)
            except SecurityError as exc:  # a static template that is unsafe on its own
                raise RenderError(
                    prompt.id, variant.name, f"unsafe operation blocked: {exc}",
                    reason="the template does something the sandbox refuses",
                ) from None  # fmt: skip
            except TemplateError as exc:  # specs are checked at load; this is a safety net
                raise RenderError(prompt.id, variant.name, f"template: {exc}") from None
            if len(self._cache) >= self._max_cached:
                # Drop the oldest entry: mutation keeps creating versions over months.
                del self._cache[next(iter(self._cache))]
            self._cache[variant.version] = compiled
            self.compilations += 1
        return compiled

    def render(
        self, prompt: PromptSpec, variant: VariantSpec | str, values: Mapping[str, Any]
    ) -> list[Message]:
        """The chat messages of ``variant``: system (if it has one), then user.

        ``values`` should come from :func:`prompts.validate_variables` (validated,
        formatted, defaults applied); they are rendered as given, and a declared
        variable missing from them renders as an empty value. Raises
        :class:`RenderError` when a template fails with these values (an undeclared
        name, a blocked operation, an error of an operation on a value).
        """
        if isinstance(variant, str):
            variant = prompt.variant(variant)
        compiled = self._compiled(prompt, variant)
        missing = compiled.reads.difference(values)
        if missing:
            declared = prompt.variables_validator.names
            values = {**values, **{name: absent(name) for name in missing if name in declared}}
        user = _render(prompt, variant, "user", compiled.user, values, self.limits)
        if compiled.system is None:
            return [{"role": "user", "content": user}]
        system = _render(prompt, variant, "system", compiled.system, values, self.limits)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def validate_and_render(
        self, prompt: PromptSpec, variant: VariantSpec | str, values: Mapping[str, Any] | None
    ) -> list[Message]:
        """Validate raw call ``values`` (:class:`~prompts.VariableError`) then render them."""
        return self.render(prompt, variant, prompt.variables_validator(values))


def _render(
    prompt: PromptSpec,
    variant: VariantSpec,
    part: str,
    template: Template | str,
    values: Mapping[str, Any],
    limits: RenderLimits,
) -> str:
    if isinstance(template, str):
        return template
    try:
        return render(template, values, limits)
    except Exception as exc:  # a value the template cannot use must not escape raw
        raise _failure(prompt, variant, part, values, exc) from None


# What a caller is told: the kind of failure, in words that quote nothing of the template.
_REASONS: dict[type[BaseException], str] = {
    ZeroDivisionError: "a division by zero",
    TypeError: "a value of a type the template cannot use (TypeError)",
    ValueError: "a value the template cannot use (ValueError)",
    OverflowError: "a number too large for the template (OverflowError)",
}


def _failure(
    prompt: PromptSpec, variant: VariantSpec, part: str, values: Mapping[str, Any], exc: Exception
) -> RenderError:
    """The :class:`RenderError` for ``exc``, raised while rendering ``part`` of ``variant``."""
    source = variant.system if part == "system" else variant.template
    line = template_line(exc)
    read = _names_on_line(source, line) if source is not None and line is not None else []
    declared = prompt.variables_validator.names
    names = tuple(n for n in read if n in declared)
    detail = type(exc).__name__
    reason = _REASONS.get(type(exc), f"the template failed ({detail})")
    if isinstance(exc, RenderLimitError):
        detail, reason = "limit exceeded", "a value beyond a rendering limit"
    elif isinstance(exc, SecurityError):
        detail, reason = "unsafe operation blocked", "an operation the sandbox refuses"
    elif isinstance(exc, UndefinedError):
        detail, reason = "undefined", "a value it reads is missing (an item, key or attribute)"
        if any(n not in declared for n in read):
            names = ()  # a name no one declared: the template's fault, not a value's
    culprit = tuple(n for n in names if str(exc) == absent_message(n))
    # A variable the call left out failed itself, or is empty text on the line, not the cause.
    names = culprit or tuple(n for n in names if not isinstance(values.get(n), Undefined))
    where = f"{part} template" + (f", line {line}" if line is not None else "")
    if names:
        where += ", reading " + ", ".join(repr(n) for n in names)
    return RenderError(
        prompt.id, variant.name, f"{detail}: {exc} ({where})",
        reason=reason, part=part, line=line, variables=names,
    )  # fmt: skip


def _names_on_line(source: str, line: int) -> list[str]:
    """Context names read on ``line`` of ``source``, a loop or ``set`` variable replaced by
    the names its value comes from (``{% for t in tags %}`` ... ``{{ t.x }}``: ``tags``)."""
    tree = parse(source)
    origins: dict[str, set[str]] = {}
    pairs = [(f.target, f.iter) for f in tree.find_all(nodes.For)]
    pairs += [(a.target, a.node) for a in tree.find_all(nodes.Assign)]
    for target, value in pairs:
        for name in names_in(target):
            origins.setdefault(name, set()).update(names_in(value))
    found: dict[str, None] = {}
    pending = [n.name for n in tree.find_all(nodes.Name) if n.lineno == line and n.ctx == "load"]
    seen: set[str] = set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if name in origins:
            pending += sorted(origins[name])
        else:
            found[name] = None
    return list(found)
