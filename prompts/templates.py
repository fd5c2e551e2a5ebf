"""Static checks of template text, done once when a prompt is loaded.

Rendering lives in :mod:`prompts.render`; this module only parses templates to find
mistakes early: syntax errors (with their line), oversize templates, the variables a
template reads, words that suggest a credential was pasted into a prompt, and attempts
to escape the sandbox.

The sandbox already blocks unsafe attribute access when a template renders; refusing
such templates when they are registered means a call routed to one never fails with a
500 (the admin API and mutation can produce them). The static check walks the Jinja2
AST and refuses any attribute or item named with a leading underscore or one of the
names used to climb out of a sandbox (``mro``, ``globals``, ``f_back`` ...), in
``x.name``, ``x["name"]``, ``x|attr("name")`` and filters' ``attribute=`` arguments, a
dynamic ``attr(...)`` name, and ``{% include %}`` / ``{% import %}`` / ``{% extends %}``
(a prompt is one template).
"""

from __future__ import annotations

import re
from functools import lru_cache

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from prompts.errors import TemplateProblem

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

# Parsing only needs the syntax settings, which every environment of ours shares, so
# one parser serves all checks; the renderer keeps its own environment for rendering.
_PARSER = SandboxedEnvironment(autoescape=False, trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=4096)
def parse(source: str) -> nodes.Template:
    """The Jinja2 AST of ``source``; raise :class:`TemplateProblem` on a syntax error."""
    try:
        return _PARSER.parse(source)
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
    return problems
