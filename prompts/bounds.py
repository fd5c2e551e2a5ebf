"""Sizes known before they are built: the checks the sandbox runs before an operation.

An operation whose result can be far larger than its operands (a repetition, a padding
width, a printf precision, a join of many references to one long text, ``replace``
with a long replacement, converting a list to text) is checked here *before* it runs,
against the :class:`~prompts.limits.Budget` of the render: building a gigabyte and then
measuring it would already be the damage. Everything else is measured after it runs
(:func:`measured`), which bounds what the next operation can start from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, ItemsView, Iterable, KeysView, Mapping, ValuesView
from itertools import islice
from string import Formatter
from typing import Any

from jinja2.sandbox import SandboxedFormatter
from jinja2.utils import Namespace

from promptlab.prompts.limits import Budget, RenderLimitError

_SEQUENCES = (str, bytes, list, tuple)
_VIEWS = (KeysView, ValuesView, ItemsView)
_CONTAINERS = (list, tuple, set, frozenset, dict, *_VIEWS)
_SIZED = (str, bytes, list, tuple, set, frozenset, dict)
MAX_SLICES = 10_000
"""Most slices the ``slice`` filter may cut (it loops over them in one call)."""
MAX_JSON_INDENT = 16
"""Largest ``tojson(indent=...)``: the indent is repeated on every line of the JSON."""


def text_size(value: Any, budget: Budget) -> int:
    """About how many characters ``str(value)`` has, without building it; a walk of at
    most ``max_value_chars`` steps that stops (and refuses) as soon as it is too long."""
    cap = budget.limits.max_value_chars
    total = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)  # braces, quotes, ": " and ", "
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, _CONTAINERS):
            total += 2 + 4 * len(item)  # brackets, quotes and ", "
            pending.extend(item)
        elif isinstance(item, Namespace):
            # Its text shows everything it holds, which cannot be sized from outside.
            raise RenderLimitError("a namespace() cannot be turned into text")
        else:  # a number, None, a bool, an Undefined, a macro...: short
            total += 8
        if total > cap:
            raise RenderLimitError(
                f"converting a value of {type(value).__name__} to text would build more "
                f"than {cap:,} characters"
            )
    return total


def to_text(value: Any, budget: Budget) -> str:
    """``str(value)``, refused when it would be longer than ``max_value_chars``."""
    if isinstance(value, (*_CONTAINERS, Namespace)):
        text_size(value, budget)
    text = str(value)
    budget.allow(len(text), "converting a value to text")
    return text


def measured(value: Any, budget: Budget) -> Any:
    """``value``, an operation's result, charged to ``budget`` (refused when too large)."""
    if isinstance(value, _SIZED):
        size = len(value)
        budget.allow(size, "an operation")
        budget.built(size)
    else:
        budget.tick()
    return value


def repetition(left: Any, right: Any, budget: Budget) -> None:
    """Refuse ``left * right`` (either order) when it would be too long."""
    if isinstance(left, int) and isinstance(right, _SEQUENCES):
        left, right = right, left
    if isinstance(left, _SEQUENCES) and isinstance(right, int) and not isinstance(right, bool):
        budget.allow(len(left) * max(right, 0), f"a repetition by {right:,}")


def product(left: Any, right: Any, budget: Budget) -> None:
    """Refuse ``left * right`` of two integers whose product would exceed ``max_bits``
    (squaring in a loop doubles the size at every step)."""
    if (
        type(left) is int
        and type(right) is int
        and left.bit_length() + right.bit_length() > MAX_INT_BITS
    ):
        raise RenderLimitError(f"a product of integers beyond {MAX_INT_BITS} bits")


MAX_INT_BITS = 4096
"""Largest integer (in bits) ``*`` or ``**`` may produce."""


def addition(left: Any, right: Any, budget: Budget) -> None:
    """Refuse ``left + right`` of two sequences when the result would be too long."""
    if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        budget.allow(len(left) + len(right), "a concatenation")


# printf-style: %[(key)][flags][width][.precision][length]type
_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?"
    r"[hlL]?(?P<type>[diouxXeEfFgGcrsa%])"
)


def printf(template: str, args: Any, budget: Budget) -> None:
    """Refuse ``template % args`` when a width, a precision or the result would be too
    long (each conversion counted with the value it formats, before formatting)."""
    if isinstance(args, Mapping):
        positional: list[Any] = []
        mapping: Mapping[str, Any] = args
    else:
        positional = list(args) if isinstance(args, tuple) else [args]
        mapping = {}
    index = 0

    def take() -> Any:
        nonlocal index
        value = positional[index] if index < len(positional) else None
        index += 1
        return value

    total = len(template)
    for match in _PRINTF.finditer(template):
        if match["type"] == "%":
            continue
        sizes = []
        for part in ("width", "precision"):
            spec = match[part]
            if spec == "*":
                given = take()
                sizes.append(given if isinstance(given, int) else 0)
            elif spec is not None:
                sizes.append(int(spec))
        budget.allow(max(sizes, default=0), "a printf width or precision")
        value = mapping.get(match["key"]) if match["key"] is not None else take()
        total += max(sizes, default=0) + text_size(value, budget)
        budget.allow(total, "printf formatting")


_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[_,]?(?:\.(?P<precision>\d+))?")


class BoundedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, refusing a width, a precision or a result beyond
    the render's bounds before each field is formatted."""

    def __init__(self, env: Any, budget: Budget) -> None:
        super().__init__(env)
        self._budget = budget
        self._total = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        budget = self._budget
        match = _SPEC.match(format_spec)
        if match is not None:
            for part in ("width", "precision"):
                if match[part]:
                    # len(), not int(): a 5,000-digit width must not be parsed first.
                    if len(match[part]) > 9:
                        raise RenderLimitError("a format width or precision is too large")
                    budget.allow(int(match[part]), "a format width or precision")
                    self._total += int(match[part])
        self._total += text_size(value, budget)
        budget.allow(self._total, "str.format")
        return super().format_field(value, format_spec)

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        budget = self._budget
        budget.allow(len(format_string), "str.format")
        result = Formatter.vformat(self, format_string, args, kwargs)
        budget.built(len(result))
        return result


def joined(items: Iterable[Any], separator: Any, budget: Budget) -> list[Any]:
    """``items`` as a list, refused when joining them with ``separator`` would be too
    long (each item's text counted before anything is joined)."""
    cap = budget.limits.max_value_chars
    listed = list(islice(items, cap + 1))
    budget.allow(len(listed), "a join")
    sep = len(separator) if isinstance(separator, str | bytes) else 0
    total = sep * max(len(listed) - 1, 0)
    budget.allow(total, "a join")
    for item in listed:
        total += len(item) if isinstance(item, str) else text_size(item, budget)
        budget.allow(total, "a join")
    return listed


def replacing(text: Any, old: Any, new: Any, count: Any, budget: Budget) -> None:
    """Refuse ``text.replace(old, new, count)`` when the result would be too long."""
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    budget.allow(len(text) + found * max(len(new) - len(old), 0), "a replace")


# ----------------------------------------------------------------- filters and methods

Check = Callable[[Budget, tuple[Any, ...], dict[str, Any]], tuple[Any, ...] | None]
"""A check run before a filter or method: its arguments (without Jinja2's context
argument) -> replacement arguments (a materialised join) or None to keep them."""


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return kwargs.get(name, args[index] if len(args) > index else None)


def _width(index: int, name: str, lines: bool = False) -> Check:
    def check(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        width = _arg(args, kwargs, index, name)
        if isinstance(width, str):  # indent("> "): that text on every line
            width = len(width)
        if isinstance(width, int):
            times = str(args[0]).count("\n") + 1 if lines and args else 1
            budget.allow(width * times, f"{name} {width:,}")

    return check


def _join(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    separator = _arg(args, kwargs, 1, "d")
    items = joined(args[0] if args else (), separator if separator is not None else "", budget)
    return (items, *args[1:])


def _replace(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    replacing(
        args[0] if args else None,
        _arg(args, kwargs, 1, "old"),
        _arg(args, kwargs, 2, "new"),
        _arg(args, kwargs, 3, "count"),
        budget,
    )


def _format(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args:
        printf(to_text(args[0], budget), kwargs or tuple(args[1:]), budget)


def _as_text(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args:
        budget.allow(text_size(args[0], budget) * 2, "converting a value to text")


def _json(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    indent = _arg(args, kwargs, 1, "indent")
    if isinstance(indent, int) and indent > MAX_JSON_INDENT:
        raise RenderLimitError(f"tojson indent is at most {MAX_JSON_INDENT}")
    _as_text(budget, args, kwargs)


def _slices(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    slices = _arg(args, kwargs, 1, "slices")
    if isinstance(slices, int) and slices > MAX_SLICES:
        raise RenderLimitError(f"slice() cuts at most {MAX_SLICES:,} slices")


def _sum(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    start = _arg(args, kwargs, 2, "start")
    if start is not None and not isinstance(start, int | float):
        # Adding lists or texts one by one copies the sum so far every time: quadratic.
        raise RenderLimitError("sum() adds numbers only in templates")


def _slow(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # Pure-Python text processing (textwrap, regexes): about 1 s per million characters
    # here, in one call the time budget cannot interrupt; a tenth of the value bound.
    if args and isinstance(args[0], str):
        cap = budget.limits.max_value_chars // 10
        if len(args[0]) > cap:
            raise RenderLimitError(f"this filter takes at most {cap:,} characters")


FILTER_CHECKS: dict[str, Check] = {
    "center": _width(1, "width"),
    "indent": _width(1, "width", lines=True),
    "batch": _width(1, "linecount"),
    "join": _join,
    "replace": _replace,
    "format": _format,
    "string": _as_text,
    "tojson": _json,
    "slice": _slices,
    "sum": _sum,
    "pprint": _as_text,
    "wordwrap": _slow,
    "urlize": _slow,
    "title": _slow,
    "striptags": _slow,
    "capitalize": _slow,
}
"""Checks run before a filter, by name (arguments after Jinja2's context argument)."""

METHOD_CHECKS: dict[str, Check] = {
    "center": _width(0, "width"),
    "ljust": _width(0, "width"),
    "rjust": _width(0, "width"),
    "zfill": _width(0, "width"),
}
"""Checks run before a method of a text, by name (arguments after the text itself)."""


def method_check(obj: Any, budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run the check of ``obj``, a bound method of a text, before it is called; returns
    the arguments to call it with. ``translate`` is refused: its table can map one
    character to any text, a size that cannot be known beforehand."""
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str | bytes):
        return args
    name = getattr(obj, "__name__", "")
    if name in ("translate", "maketrans"):
        raise RenderLimitError(f"str.{name} is not available in templates")
    if name == "replace":
        replacing(owner, _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new"),
                  _arg(args, kwargs, 2, "count"), budget)  # fmt: skip
    elif name == "join" and args:
        return (joined(args[0], owner, budget), *args[1:])
    elif name == "expandtabs":
        tabs = _arg(args, kwargs, 0, "tabsize")
        if isinstance(tabs, int):
            found = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            budget.allow(len(owner) + found * tabs, "expandtabs")
    elif (check := METHOD_CHECKS.get(name)) is not None:
        check(budget, args, kwargs)
    return args
