"""The environment templates render in, and the value of a variable a call left out.

:class:`PromptSandbox` is Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment` (no
attribute tricks such as ``''.__class__``) with :class:`~jinja2.StrictUndefined`, plus
hard bounds on what one render may do (:mod:`prompts.limits`). Templates come from
prompt files, the admin API and a mutator model, and values arrive with every call:
``{% for a in range(100000) %}{% for b in range(100000) %}`` would hold the event loop
for hours, ``'{:>200000000}'.format(code)`` or 800 x ``'x' * 999999`` would build a
gigabyte, 3,000 nested parentheses would blow the stack. So:

* every template is parsed after its nesting is measured (:mod:`prompts.nesting`),
  ``recursive`` loops are refused, and every ``for`` loop counts its iterations;
* the operators that can build large values (``*``, ``**``, ``+``, ``%``, ``~``),
  every filter, every call (methods, macros, globals), ``str.format`` and output are
  charged to the render's :class:`~prompts.limits.Budget`, checked before the value is
  built where its size can be known (:mod:`prompts.bounds`);
* time is checked at every one of those steps.

Jinja2's constant folding is off (``optimized=False``) and the finalize step needs the
render's context, so nothing a template says is evaluated outside a budget. Going
beyond a bound raises :class:`RenderLimitError`; :func:`render` runs one template
within a budget and is the only way templates are rendered.

:func:`absent` is what a template sees for a declared variable that the call did not
give and that has no default: a lenient :class:`~jinja2.Undefined`, so ``{{ n }}``
renders nothing, ``{% if n %}``, ``{{ n or "x" }}`` and ``{{ n | default("x") }}`` see
an empty value and ``n is defined`` is false, while arithmetic, comparisons, attributes
and items of it still fail (:func:`prompts.templates.absent_value_problems` refuses
such uses outside a guard when the prompt is registered). A name the prompt does not
declare stays strictly undefined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache, update_wrapper, wraps
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import pass_eval_context

from promptlab.prompts import bounds
from promptlab.prompts.limits import (
    DEFAULT_LIMITS,
    Budget,
    RenderLimitError,
    RenderLimits,
    active,
    current,
    enter,
    leave,
)
from promptlab.prompts.nesting import token_nesting, tree_depth_problem

__all__ = [
    "MAX_POWER_BITS",
    "MAX_REPEAT",
    "PromptSandbox",
    "RenderLimitError",
    "absent",
    "absent_message",
    "render",
    "template_line",
]

MAX_REPEAT = DEFAULT_LIMITS.max_value_chars
"""Most characters or items a template may build by repeating a value (by default)."""
MAX_POWER_BITS = bounds.MAX_INT_BITS
"""Largest integer (in bits) ``**`` (and ``*``) may produce."""
MAX_LIPSUM = 100
"""Most paragraphs (and words per paragraph, times ten) ``lipsum()`` may produce."""


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


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, each charged as one iteration of the render."""
    budget = current()
    for item in iterable:
        budget.iteration()
        yield item


@pass_eval_context
def _finalize(eval_ctx: Any, value: Any) -> Any:
    """Every ``{{ ... }}`` output, converted to text within the render's budget.

    Takes the evaluation context only so that Jinja2 never finalizes (evaluates) an
    output at compile time, outside any budget."""
    budget = active()
    if budget is None:
        return value
    text = value if type(value) is str else bounds.to_text(value, budget)
    budget.built(len(text))
    return text


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` checked before (:data:`prompts.bounds.FILTER_CHECKS`) and measured after."""
    check = bounds.FILTER_CHECKS.get(name)
    # Filters marked pass_context / pass_eval_context / pass_environment get Jinja2's
    # object first; the checks read the arguments after it.
    skip = 1 if getattr(original, "jinja_pass_arg", None) is not None else 0

    @wraps(original)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = current()
        budget.tick()
        if check is not None:
            replaced = check(budget, args[skip:], kwargs)
            if replaced is not None:
                args = (*args[:skip], *replaced)
        return bounds.measured(original(*args, **kwargs), budget)

    return bounded


def _bounded_lipsum(original: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(original)
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:
        if not all(isinstance(x, int) for x in (n, min, max)) or (
            n > MAX_LIPSUM or min > 10 * MAX_LIPSUM or max > 10 * MAX_LIPSUM
        ):
            raise RenderLimitError(f"lipsum() is limited to {MAX_LIPSUM} paragraphs")
        return original(n, html, min, max)

    return lipsum


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja2's code generator, with ``~`` built within the render's budget."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class PromptSandbox(SandboxedEnvironment):
    """The sandboxed, strictly undefined, bounded environment every template renders in."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self) -> None:
        # trim_blocks/lstrip_blocks: a {% if %} on its own line leaves no blank line,
        # which is what authors of text (not HTML) templates expect.
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_finalize,
            optimized=False,
        )
        filters = self.filters  # this environment's own copy of the built-in filters
        for name, original in list(filters.items()):
            filters[name] = _bounded_filter(name, original)
        lipsum: Callable[..., Any] = self.globals["lipsum"]  # type: ignore[assignment]
        self.globals["lipsum"] = _bounded_lipsum(lipsum)

    # ------------------------------------------------------------------ parsing

    def parse(
        self, source: str, name: str | None = None, filename: str | None = None
    ) -> nodes.Template:
        """The syntax tree of ``source``, refused (``TemplateSyntaxError``) when it nests
        beyond :mod:`prompts.nesting`'s bounds, before Jinja2's parser recurses into it."""
        problem = token_nesting(self.lex(source, name, filename))
        if problem is not None:
            raise TemplateSyntaxError(problem[1], problem[0], name, filename)
        try:
            tree = super().parse(source, name, filename)
        except RecursionError:
            raise TemplateSyntaxError("nested too deeply", 1, name, filename) from None
        problem = tree_depth_problem(tree)
        if problem is not None:
            raise TemplateSyntaxError(problem[1], problem[0], name, filename)
        return tree

    def compile(
        self,
        source: str | nodes.Template,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        """Compile ``source`` with every loop counted; ``recursive`` loops are refused
        (their inner calls would escape the count)."""
        tree = self.parse(source, name, filename) if isinstance(source, str) else source
        for loop in tree.find_all(nodes.For):
            if loop.recursive:
                raise TemplateSyntaxError(
                    "recursive loops are not allowed in prompts", loop.lineno, name, filename
                )
            # environment.counted_loop(<iterable>): a name no template can write.
            counted = nodes.EnvironmentAttribute("counted_loop", lineno=loop.lineno)
            loop.iter = nodes.Call(counted, [loop.iter], [], None, None, lineno=loop.lineno)
        token = enter(Budget()) if active() is None else None
        try:
            return super().compile(tree, name, filename, raw, defer_init)  # type: ignore[call-overload]
        except RecursionError:
            raise TemplateSyntaxError("nested too deeply", 1, name, filename) from None
        finally:
            if token is not None:
                leave(token)

    # ------------------------------------------------------------------ running

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``left <operator> right`` within the budget (``*``, ``**``, ``+``, ``%`` come here)."""
        budget = current()
        if operator == "*":
            bounds.repetition(left, right, budget)
            bounds.product(left, right, budget)
        elif operator == "**":
            _power(left, right)
        elif operator == "+":
            bounds.addition(left, right, budget)
        elif operator == "%" and isinstance(left, str):
            bounds.printf(left, right, budget)
        return bounds.measured(super().call_binop(context, operator, left, right), budget)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """A call from a template (a method, a macro, a global) within the budget."""
        budget = current()
        budget.tick()
        args = bounds.method_check(__obj, budget, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, list | dict | set):  # append, extend, update: it grew
            budget.allow(len(owner), f"{type(owner).__name__}.{__obj.__name__}")
        return bounds.measured(result, budget)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` / ``format_map`` through :class:`prompts.bounds.BoundedFormatter`."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text: str = value.__self__
        is_map = value.__name__ == "format_map"
        formatter = bounds.BoundedFormatter(self, current())

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return type(text)(formatter.vformat(text, (), args[0]))
            return type(text)(formatter.vformat(text, args, kwargs))

        return update_wrapper(bounded, value)

    @staticmethod
    def counted_loop(iterable: Iterable[Any]) -> Iterator[Any]:
        """A ``for`` loop's items, each charged as one iteration of the render (every
        loop's iterable is wrapped in this when the template is compiled)."""
        return _counted(iterable)

    def bounded_concat(self, parts: Iterable[Any]) -> str:
        """``a ~ b ~ ...`` within the budget."""
        budget = current()
        texts = [p if type(p) is str else bounds.to_text(p, budget) for p in parts]
        size = sum(map(len, texts))
        budget.allow(size, "a concatenation (~)")
        budget.built(size)
        return "".join(texts)

    def concat(self, parts: Iterable[str]) -> str:
        """A block's output joined (``{% set %}...{% endset %}``, a macro, a filter
        block) within the budget; Jinja2 joins buffered output with this."""
        budget = current()
        listed = list(parts)
        size = sum(map(len, listed))
        budget.allow(size, "a block's output")
        budget.built(size)
        return "".join(listed)


def render(template: Template, values: Mapping[str, Any], limits: RenderLimits) -> str:
    """``template`` rendered with ``values`` within a fresh budget of ``limits``; raises
    :class:`RenderLimitError` beyond a bound, and whatever the template raises
    otherwise (its traceback rewritten to the template's lines, as Jinja2 does)."""
    budget = Budget(limits)
    token = enter(budget)
    try:
        parts = []
        for chunk in template.root_render_func(template.new_context(dict(values))):
            budget.emit(len(chunk))
            parts.append(chunk)
        return "".join(parts)
    except RecursionError:
        raise RenderLimitError("macros or loops nested too deeply") from None
    except Exception:
        template.environment.handle_exception()
        raise  # pragma: no cover - handle_exception always raises
    finally:
        leave(token)


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
