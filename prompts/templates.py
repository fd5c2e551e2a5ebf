"""Static checks of template text, done once when a prompt is loaded.

Rendering lives in :mod:`prompts.render`; this module only parses templates to find
mistakes early: syntax errors (with their line), oversize templates, the variables a
template reads, words that suggest a credential was pasted into a prompt, attempts to
escape the sandbox, and a template that reads no variable yet cannot render (it would
fail the same way on every call, so it is rendered once here).

The sandbox already blocks unsafe attribute access when a template renders; refusing
such templates when they are registered means a call routed to one never fails with a
500 (the admin API and mutation can produce them). The static check walks the Jinja2
AST and refuses any attribute or item named with a leading underscore or one of the
names used to climb out of a sandbox (``mro``, ``globals``, ``f_back`` ...), in
``x.name``, ``x["name"]``, ``x|attr("name")`` and filters' ``attribute=`` arguments, a
dynamic ``attr(...)`` name, and ``{% include %}`` / ``{% import %}`` / ``{% extends %}``
(a prompt is one template).

A declared variable that a call may leave out (optional, no default) renders as an
empty value (:func:`prompts.sandbox.absent`); :func:`absent_value_problems` finds the
uses of such a variable that fail on an empty value (arithmetic, ordering comparisons,
attributes, items, calls, and the filters and tests that need a real value) outside a
guard, so such a template is refused when it is registered rather than failing on the
first call that leaves the variable out.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from functools import lru_cache

from jinja2 import TemplateSyntaxError, meta, nodes

from promptlab.prompts.errors import TemplateProblem
from promptlab.prompts.limits import DEFAULT_LIMITS, RenderLimitError
from promptlab.prompts.sandbox import PromptSandbox, absent, render, template_line

MAX_TEMPLATE_CHARS = 10_000
"""Longest template (system or user) a prompt file may carry."""
MAX_TEMPLATE_VARIABLES = 50
"""Most distinct variables one template may read."""

# A letter on either side means another word ("tokens" as a unit of length, "secretary"),
# so the pattern only matches the credential words themselves, including inside
# snake_case names such as ``access_token`` or ``{{ api_key }}``.
FORBIDDEN_PATTERN = re.compile(
    r"(?<![a-z])(?:passwords?|passwd|secrets?|token|api[ _-]?keys?)(?![a-z])",
    re.IGNORECASE,
)
"""Words a template must not contain: prompts must never carry or ask for credentials."""

# One environment of the renderer's kind parses every template checked here, and renders,
# once, those that read no variable (the renderer keeps its own to render calls with).
_ENV = PromptSandbox()


@lru_cache(maxsize=4096)
def parse(source: str) -> nodes.Template:
    """The Jinja2 AST of ``source``; raise :class:`TemplateProblem` on a syntax error."""
    try:
        return _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "syntax error", exc.lineno) from None


def template_variables(source: str) -> frozenset[str]:
    """Names ``source`` reads from its context (loop and ``set`` variables excluded)."""
    return frozenset(meta.find_undeclared_variables(parse(source)))


# Names that only ever serve to reach interpreter internals from inside a template.
_ESCAPE_NAMES = frozenset(
    {"mro", "globals", "func_globals", "f_globals", "f_locals", "f_back", "f_builtins",
     "f_code", "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code",
     "tb_frame", "tb_next", "co_code", "func_code", "im_func", "im_class", "subclasses"}
)  # fmt: skip
# Filters that take attribute names as arguments (``map(attribute="x")``, ``attr("x")``).
_ATTRIBUTE_FILTERS = frozenset(
    {"attr", "map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min",
     "max", "dictsort"}
)  # fmt: skip


def _unsafe_name(name: object) -> bool:
    if not isinstance(name, str):
        return False
    return any(part.startswith("_") or part in _ESCAPE_NAMES for part in name.split("."))


def sandbox_problems(tree: nodes.Template) -> list[str]:
    """Constructs in ``tree`` that try to leave the sandbox, as messages with lines."""
    problems: list[str] = []

    def refuse(node: nodes.Node, what: str) -> None:
        problems.append(f"line {node.lineno}: {what}: templates may not reach internals")

    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test)):
        if isinstance(node, nodes.Getattr) and _unsafe_name(node.attr):
            refuse(node, f"attribute {node.attr!r}")
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and _unsafe_name(node.arg.value)
        ):
            refuse(node, f"item {node.arg.value!r}")
        elif isinstance(node, nodes.Filter | nodes.Test) and node.name in _ATTRIBUTE_FILTERS:
            for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
                if isinstance(arg, nodes.Const) and _unsafe_name(arg.value):
                    refuse(node, f"{node.name}({arg.value!r})")
                elif node.name == "attr" and not isinstance(arg, nodes.Const):
                    refuse(node, "attr() with a computed name")
    for stmt in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        problems.append(
            f"line {stmt.lineno}: {type(stmt).__name__.lower()}: a prompt is one template"
        )
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            problems.append(f"line {loop.lineno}: recursive loops are not allowed in prompts")
    return problems


def check_template(source: str) -> list[str]:
    """Every problem of one template's text, as messages; empty when it is fine.

    Checks length, forbidden words, syntax and the number of variables read. Whether the
    variables are declared is the prompt's business (it knows the declarations).
    """
    problems: list[str] = []
    if len(source) > MAX_TEMPLATE_CHARS:
        problems.append(f"{len(source)} characters, at most {MAX_TEMPLATE_CHARS} allowed")
    for match in FORBIDDEN_PATTERN.finditer(source):
        line = source.count("\n", 0, match.start()) + 1
        problems.append(
            f"line {line}: forbidden word {match.group(0)!r}: "
            "templates must not carry or ask for credentials"
        )
    try:
        names = template_variables(source)
    except TemplateProblem as exc:
        problems.append(str(exc))
    else:
        problems += sandbox_problems(parse(source))
        if len(names) > MAX_TEMPLATE_VARIABLES:
            problems.append(
                f"reads {len(names)} variables, at most {MAX_TEMPLATE_VARIABLES} allowed"
            )
        if not problems:
            problems += _render_problems(source, tuple(sorted(names)))
    return problems


@lru_cache(maxsize=4096)
def _render_problems(source: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Render ``source`` once now, within the default bounds (:mod:`prompts.limits`).

    A template that reads no variable renders the same text for every call, so one that
    cannot (``{{ 1 / 0 }}``, a bound broken) is refused here and not on every call. A
    template that reads variables is tried with each of them absent (empty): only a
    broken bound refuses it then (nested loops of ``range()``, a huge padding), since
    its other failures may depend on real values. Cached: the same system message comes
    with many variants. Bounded in time and memory like any render."""
    try:
        render(_ENV.from_string(source), {n: absent(n) for n in names}, DEFAULT_LIMITS)
    except Exception as exc:
        if names and not isinstance(exc, RenderLimitError):
            return ()
        line = template_line(exc)
        where = f"line {line}: " if line is not None else ""
        if isinstance(exc, RenderLimitError):
            return (f"{where}breaks a rendering bound: {exc}",)
        return (f"{where}cannot be rendered: {type(exc).__name__}: {exc}",)
    return ()


# Filters and tests that fail on an absent value (measured on Jinja2 3.1: the others
# treat it as empty text or an empty sequence). tests/prompts checks these sets.
FAILS_ON_ABSENT_FILTERS = frozenset(
    {"abs", "attr", "dictsort", "filesizeformat", "first", "float", "indent", "int", "last",
     "max", "min", "random", "round", "tojson", "wordwrap", "xmlattr"}
)  # fmt: skip
FAILS_ON_ABSENT_TESTS = frozenset(
    {"divisibleby", "even", "odd", "ge", "gt", "le", "lt", "greaterthan", "lessthan"}
)
# Filters and tests whose arguments may be an absent value (a fallback, a separator, an
# equality); every other filter or test needs a real number or text as its argument.
ABSENT_ARGUMENT_FILTERS = frozenset({"default", "d", "join"})
ABSENT_ARGUMENT_TESTS = frozenset({"eq", "ne", "equalto", "sameas", "in", "==", "!="})
_ORDERING = frozenset({"lt", "lteq", "gt", "gteq"})
_ARITHMETIC = (nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow)


def _arguments(node: nodes.Filter | nodes.Test) -> list[nodes.Node]:
    return [*node.args, *(kw.value for kw in node.kwargs)]


def _failing_operands(node: nodes.Node) -> Iterator[tuple[nodes.Node, str]]:
    """The direct operands of ``node`` that must not be an absent value, with what
    ``node`` does to them (words that follow the variable's name)."""
    if isinstance(node, _ARITHMETIC):
        yield node.left, f"arithmetic ({node.operator}) on it"
        yield node.right, f"arithmetic ({node.operator}) on it"
    elif isinstance(node, nodes.Neg | nodes.Pos):
        yield node.node, "arithmetic on it"
    elif isinstance(node, nodes.Compare) and any(op.op in _ORDERING for op in node.ops):
        yield node.expr, "an ordering comparison of it"
        for op in node.ops:
            yield op.expr, "an ordering comparison of it"
    elif isinstance(node, nodes.Getattr):
        yield node.node, f"its attribute {node.attr!r}"
    elif isinstance(node, nodes.Getitem):
        yield node.node, "an item of it"
        yield node.arg, "it as an item index"
    elif isinstance(node, nodes.Call):
        yield node.node, "calling it"
    elif isinstance(node, nodes.Filter):
        if node.node is not None and node.name in FAILS_ON_ABSENT_FILTERS:
            yield node.node, f"filter {node.name!r} on it"
        if node.name not in ABSENT_ARGUMENT_FILTERS:
            for arg in _arguments(node):
                yield arg, f"it as an argument of filter {node.name!r}"
    elif isinstance(node, nodes.Test):
        if node.name in FAILS_ON_ABSENT_TESTS:
            yield node.node, f"test {node.name!r} on it"
        if node.name not in ABSENT_ARGUMENT_TESTS:
            for arg in _arguments(node):
                yield arg, f"it as an argument of test {node.name!r}"


def names_in(node: nodes.Node) -> frozenset[str]:
    """Names in the AST ``node``, itself included (``find_all`` only looks below it)."""
    found = {n.name for n in node.find_all(nodes.Name)}
    if isinstance(node, nodes.Name):
        found.add(node.name)
    return frozenset(found)


def absent_value_problems(source: str, names: Collection[str]) -> list[str]:
    """Uses in ``source`` of variables ``names`` (optional, without a default) that fail
    when a call leaves one out, as messages with lines; empty when there are none.

    A use is guarded, and fine, inside ``{% if ... %}`` (or ``x if ... else y``, or
    after ``... and``) whose condition reads the variable: ``{% if n %}{{ n + 1 }}``,
    ``{% if n is defined %}``, ``n and n > 3``. ``n | default(0) + 1`` and
    ``(n or 0) + 1`` are fine too: the arithmetic is not on ``n`` itself. A variable the
    template assigns anywhere (a loop variable, ``set``, a macro argument) is not
    checked, so a local of the same name is never mistaken for it.
    """
    tree = parse(source)
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx != "load"}
    watched = frozenset(names) - assigned
    if not watched:
        return []
    problems: list[str] = []

    def visit(node: nodes.Node, guarded: frozenset[str]) -> None:
        for operand, what in _failing_operands(node):
            if (
                isinstance(operand, nodes.Name)
                and operand.name in watched
                and operand.name not in guarded
            ):
                name = operand.name
                problems.append(
                    f"line {operand.lineno}: {name!r} is optional without a default, and "
                    f"{what} fails for every call that leaves it out: guard it "
                    f"({{% if {name} %}}), give it a default or make it required"
                )
        if isinstance(node, nodes.If):
            visit(node.test, guarded)
            for child in node.body:
                visit(child, guarded | names_in(node.test))
            for child in [*node.elif_, *node.else_]:
                visit(child, guarded)
        elif isinstance(node, nodes.CondExpr):
            visit(node.test, guarded)
            visit(node.expr1, guarded | names_in(node.test))
            if node.expr2 is not None:
                visit(node.expr2, guarded)
        elif isinstance(node, nodes.And):
            visit(node.left, guarded)
            visit(node.right, guarded | names_in(node.left))
        else:
            for child in node.iter_child_nodes():
                visit(child, guarded)

    visit(tree, frozenset())
    return list(dict.fromkeys(problems))  # "n < 1 < n" is one problem, not two
