"""The bounds of one render: how much a template may loop, build, output and take.

Templates come from prompt files, the admin API and a mutator model; values come with
every call. Neither is trusted to be reasonable, so every render runs inside a
:class:`Budget` made from :class:`RenderLimits`. The sandbox (:mod:`prompts.sandbox`)
charges it as the template runs: each loop iteration, each value an expression,
operator, filter or call builds (counted *before* a big one is built where its size
can be known: a repetition, a padding width, a join), each character output, and the
time spent, checked at each of those steps. Going beyond any bound raises
:class:`RenderLimitError`, which the renderer reports like any rendering failure: a
400 for the call (recorded once), a refusal when the template is registered.

Counting, not a watchdog: a render is never interrupted from outside, and a bomb
stops after at most one bounded step past its limit, so it costs bounded time and
memory on whatever thread runs it.
"""

from __future__ import annotations

from contextvars import ContextVar
from time import thread_time
from typing import Any

from jinja2.exceptions import SecurityError
from pydantic import BaseModel, ConfigDict, Field

from promptlab.prompts.errors import PromptError


class RenderLimitError(SecurityError, PromptError):
    """A template (or a value in it) went beyond a bound of :class:`RenderLimits`; a
    Jinja2 ``SecurityError`` like the sandbox's own refusals."""


class RenderLimits(BaseModel):
    """``[prompts.render]``: the bounds every render of a template runs within."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_output_chars: int = Field(default=2_000_000, ge=1_000)
    """Most characters one render of a template may output (the system and the user
    message are rendered, and bounded, separately)."""
    max_value_chars: int = Field(default=1_000_000, ge=1_000)
    """Largest text or list one operation may build: a repetition (``'x' * n``), a
    padding or precision (``'{:>n}'``, ``'%nd'``, ``center(n)``), a join, a
    concatenation, a filter's or a method's result."""
    max_work_chars: int = Field(default=20_000_000, ge=1_000)
    """Most characters all the operations of one render may build together (what
    bounds its memory even when each value is within ``max_value_chars``)."""
    max_iterations: int = Field(default=100_000, ge=1)
    """Most loop iterations one render may run, all loops together (one ``range()`` is
    also at most 100,000 long)."""
    time_s: float = Field(default=0.1, gt=0, le=60)
    """Most seconds of CPU one render may take (the rendering thread's own time, so a
    process the machine pauses under load is not cut short), checked every
    :data:`TIME_CHECK_STEPS` steps (loop iterations, outputs, operations)."""


DEFAULT_LIMITS = RenderLimits()
"""The bounds registration checks use (prompt files, ``/admin``, mutants)."""
TIME_CHECK_STEPS = 64
"""Steps between two readings of the clock (reading it costs about a microsecond; each
step is bounded, so a render overruns ``time_s`` by at most this many steps)."""
_MASK = TIME_CHECK_STEPS - 1


class Budget:
    """What one render has left of its :class:`RenderLimits`; charged as it runs."""

    __slots__ = ("deadline", "iterations", "limits", "output", "steps", "work")

    def __init__(self, limits: RenderLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.deadline: float | None = None
        """CPU time at which the render is stopped, set at the first clock reading: a
        render of fewer than :data:`TIME_CHECK_STEPS` steps never reads the clock."""
        self.steps = 0
        self.iterations = 0
        self.output = 0
        self.work = 0

    def tick(self) -> None:
        """One step of the template: refuse to go on past the time budget."""
        self.steps += 1
        if self.steps & _MASK:
            return
        now = thread_time()
        if self.deadline is None:
            self.deadline = now + self.limits.time_s
        elif now > self.deadline:
            raise RenderLimitError(f"rendering took longer than {self.limits.time_s:g} s")

    def iteration(self) -> None:
        """One loop iteration."""
        self.iterations += 1
        if self.iterations > self.limits.max_iterations:
            raise RenderLimitError(
                f"more than {self.limits.max_iterations:,} loop iterations in one render"
            )
        self.tick()

    def allow(self, size: int, what: str) -> None:
        """Refuse to build ``what`` of ``size`` characters or items (before building it)."""
        if size > self.limits.max_value_chars:
            raise RenderLimitError(
                f"{what} would build {size:,} characters or items, "
                f"at most {self.limits.max_value_chars:,}"
            )

    def built(self, size: int) -> None:
        """``size`` characters or items were just built by an operation."""
        self.work += size
        if self.work > self.limits.max_work_chars:
            raise RenderLimitError(
                f"the render built more than {self.limits.max_work_chars:,} characters"
            )
        self.tick()

    def emit(self, size: int) -> None:
        """``size`` characters were output."""
        self.output += size
        if self.output > self.limits.max_output_chars:
            raise RenderLimitError(
                f"the output is longer than {self.limits.max_output_chars:,} characters"
            )


_CURRENT: ContextVar[Budget | None] = ContextVar("promptlab_render_budget", default=None)


def current() -> Budget:
    """The budget of the render in progress; outside one (Jinja2 folding constants
    while it compiles a template) a fresh default budget, so every single operation is
    still bounded."""
    budget = _CURRENT.get()
    return budget if budget is not None else Budget()


def active() -> Budget | None:
    """The budget of the render in progress, or None outside a render."""
    return _CURRENT.get()


def enter(budget: Budget) -> Any:
    """Make ``budget`` the current one; give the token to :func:`leave`."""
    return _CURRENT.set(budget)


def leave(token: Any) -> None:
    _CURRENT.reset(token)
