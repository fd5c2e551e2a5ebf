"""The environment templates render in, and the value of a variable a call left out.

:class:`PromptSandbox` is Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment` (no
attribute tricks such as ``''.__class__``) with :class:`~jinja2.StrictUndefined`, plus
limits on the work one value can cause. Templates are checked when they are registered,
but values arrive with every call: ``{{ "#" * level }}`` with ``level = 10**9`` would
build a gigabyte and ``{{ 2 ** n }}`` with ``n = 2**40`` would hold the event loop for
hours. The sandbox already caps ``range()``; this caps repetition (``*`` on text or a
list, and the ``center``, ``indent`` and ``batch`` filters) at :data:`MAX_REPEAT` and
integer powers at :data:`MAX_POWER_BITS`. Going beyond raises :class:`RenderLimitError`
(a :class:`~jinja2.exceptions.SecurityError`), which the renderer reports like any
other rendering failure.

:func:`absent` is what a template sees for a declared variable that the call did not
give and that has no default: a lenient :class:`~jinja2.Undefined`, so ``{{ n }}``
renders nothing, ``{% if n %}``, ``{{ n or "x" }}`` and ``{{ n | default("x") }}`` see
an empty value and ``n is defined`` is false, while arithmetic, comparisons, attributes
and items of it still fail (:func:`prompts.templates.absent_value_problems` refuses
such uses outside a guard when the prompt is registered). A name the prompt does not
declare stays strictly undefined.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Undefined
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from promptlab.prompts.errors import PromptError

MAX_REPEAT = 1_000_000
"""Most characters or items a template may build by repeating a value."""
MAX_POWER_BITS = 4096
"""Largest integer (in bits) ``**`` may produce."""

_SEQUENCES = (str, list, tuple)


class RenderLimitError(SecurityError, PromptError):
    """A value would make the template build more than the limits allow; a Jinja2
    ``SecurityError`` like the sandbox's own refusals, which the renderer turns into a
    :class:`~prompts.errors.RenderError`."""


def _repetition(left: Any, right: Any) -> None:
    """Refuse ``left * right`` when it would repeat a sequence beyond :data:`MAX_REPEAT`."""
    if isinstance(left, int) and isinstance(right, _SEQUENCES):
        left, right = right, left
    if isinstance(left, _SEQUENCES) and isinstance(right, int) and len(left) * right > MAX_REPEAT:
        raise RenderLimitError(
            f"repetition of {len(left)} by {right} is beyond {MAX_REPEAT:,} characters or items"
        )


def _power(base: Any, exponent: Any) -> None:
    """Refuse ``base ** exponent`` when the integer result would exceed :data:`MAX_POWER_BITS`."""
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and abs(base) > 1
        and (abs(base) - 1).bit_length() * exponent > MAX_POWER_BITS
    ):
        raise RenderLimitError(f"a power with exponent {exponent} is beyond {MAX_POWER_BITS} bits")


def _lines(value: Any) -> int:
    return str(value).count("\n") + 1


def _capped(
    name: str,
    original: Callable[..., Any],
    keyword: str,
    size: Callable[[Any, int], int] = lambda value, count: count,
) -> Callable[..., Any]:
    """``original``, a filter whose second argument (``keyword``) says how much to build,
    refusing to build more than :data:`MAX_REPEAT` (``size(value, count)``)."""

    def capped(*args: Any, **kwargs: Any) -> Any:
        count = kwargs.get(keyword, args[1] if len(args) > 1 else None)
        if isinstance(count, str):  # indent("> "): the text repeated on every line
            count = len(count)
        if isinstance(count, int) and args and size(args[0], count) > MAX_REPEAT:
            raise RenderLimitError(f"{name}({count}) builds more than {MAX_REPEAT:,}")
        return original(*args, **kwargs)

    return capped


class PromptSandbox(SandboxedEnvironment):
    """The sandboxed, strictly undefined environment every template renders in."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        # trim_blocks/lstrip_blocks: a {% if %} on its own line leaves no blank line,
        # which is what authors of text (not HTML) templates expect.
        super().__init__(
            undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
        )
        filters = self.filters  # this environment's own copy of the built-in filters
        filters["center"] = _capped("center", filters["center"], "width")
        filters["batch"] = _capped("batch", filters["batch"], "linecount")
        filters["indent"] = _capped(
            "indent", filters["indent"], "width", lambda value, width: width * _lines(value)
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``left <operator> right`` within the limits (only ``*`` and ``**`` come here)."""
        if operator == "*":
            _repetition(left, right)
        elif operator == "**":
            _power(left, right)
        return super().call_binop(context, operator, left, right)


def absent_message(name: str) -> str:
    """The message of the ``UndefinedError`` a use of :func:`absent` ``(name)`` raises."""
    return f"{name!r} was not given (optional, without a default)"


@lru_cache(maxsize=4096)
def absent(name: str) -> Undefined:
    """The value of declared variable ``name`` when a call leaves it out (no default)."""
    return Undefined(hint=absent_message(name), name=name)


def template_line(exc: BaseException) -> int | None:
    """The template line ``exc`` was raised at, when it was raised while rendering: Jinja2
    rewrites a rendering traceback so that its last template frame carries the template's
    own line number."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
