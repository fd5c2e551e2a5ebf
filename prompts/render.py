"""Rendering a variant into chat messages, in a sandbox, compiled once.

Templates come from prompt files, the admin API and LLM-driven mutation, so they run in
Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment` (no attribute tricks such as
``''.__class__``), with :class:`~jinja2.StrictUndefined` (a misspelt or missing
variable fails loudly instead of rendering as nothing). Variable values are passed as
context only: a value containing ``{{ ... }}`` is text, never evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from prompts.errors import RenderError
from prompts.spec import PromptSpec, VariantSpec
from prompts.templates import template_variables

Message = dict[str, str]


class _Compiled:
    """A variant's templates, compiled; a template without variables is kept as text."""

    __slots__ = ("system", "user")

    def __init__(self, env: SandboxedEnvironment, variant: VariantSpec) -> None:
        self.system = self._compile(env, variant.system) if variant.system is not None else None
        self.user = self._compile(env, variant.template)

    @staticmethod
    def _compile(env: SandboxedEnvironment, source: str) -> Template | str:
        template = env.from_string(source)
        # Static text (the usual system message) renders once here, not per call.
        # Without undeclared names the output cannot depend on the context or on
        # globals such as lipsum, so rendering it now gives the same text.
        if not template_variables(source):
            return template.render()
        return template


class Renderer:
    """Renders variants into chat messages; one per process, shared by all prompts.

    Compiled templates are cached by variant version (content hash), so a variant is
    compiled on first use only and an edited variant (new version) is compiled afresh.
    """

    def __init__(self, *, max_cached: int = 2048) -> None:
        # trim_blocks/lstrip_blocks: a {% if %} on its own line leaves no blank line,
        # which is what authors of text (not HTML) templates expect.
        self.env = SandboxedEnvironment(
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._cache: dict[str, _Compiled] = {}
        self._max_cached = max_cached
        self.compilations = 0
        """How many variants were compiled (a cache hit does not count)."""

    def _compiled(self, prompt: PromptSpec, variant: VariantSpec) -> _Compiled:
        compiled = self._cache.get(variant.version)
        if compiled is None:
            try:
                compiled = _Compiled(self.env, variant)
            except SecurityError as exc:  # a static template that is unsafe on its own
                raise RenderError(
                    prompt.id, variant.name, f"unsafe operation blocked: {exc}"
                ) from None
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
        formatted, defaults applied); they are rendered as given. Raises
        :class:`RenderError` for an undefined variable or a blocked (unsafe) operation.
        """
        if isinstance(variant, str):
            variant = prompt.variant(variant)
        compiled = self._compiled(prompt, variant)
        try:
            user = compiled.user if isinstance(compiled.user, str) else compiled.user.render(values)
            if compiled.system is None:
                return [{"role": "user", "content": user}]
            system = (
                compiled.system
                if isinstance(compiled.system, str)
                else compiled.system.render(values)
            )
        except SecurityError as exc:
            raise RenderError(prompt.id, variant.name, f"unsafe operation blocked: {exc}") from None
        except UndefinedError as exc:
            raise RenderError(prompt.id, variant.name, f"undefined: {exc}") from None
        except Exception as exc:  # a template bug (e.g. "text" + 1) must not escape raw
            raise RenderError(prompt.id, variant.name, f"{type(exc).__name__}: {exc}") from None
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def validate_and_render(
        self, prompt: PromptSpec, variant: VariantSpec | str, values: Mapping[str, Any] | None
    ) -> list[Message]:
        """Validate raw call ``values`` (:class:`~prompts.VariableError`) then render them."""
        return self.render(prompt, variant, prompt.variables_validator(values))
