"""How deeply a template nests, measured without recursion.

Jinja2's parser and code generator, and Python's compiler after them, recurse once per
level of nesting: 3,000 nested parentheses or 400 nested ``{% if %}`` blow the stack
(a ``RecursionError``), and Python refuses more than 20 nested loops. So the nesting is
measured first, on the token stream (the lexer does not recurse), and then on the
syntax tree with an explicit stack, and a template nested beyond the bounds below is
refused with a message saying where.
"""

from __future__ import annotations

from collections.abc import Iterable

from jinja2 import nodes

MAX_BRACKETS = 32
"""Deepest nesting of ``(``, ``[`` and ``{`` in one template."""
MAX_BLOCKS = 12
"""Deepest nesting of block tags (``{% if %}``, ``{% for %}``, ``{% macro %}``...)."""
MAX_TREE_DEPTH = 64
"""Deepest syntax tree (operator chains such as ``a + b + c + ...`` count one a level)."""

_OPEN_BRACKETS = frozenset("([{")
_CLOSE_BRACKETS = frozenset(")]}")
_BLOCK_TAGS = frozenset(
    {"for", "if", "macro", "call", "filter", "with", "block", "autoescape", "trans"}
)


def token_nesting(tokens: Iterable[tuple[int, str, str]]) -> tuple[int, str] | None:
    """The first nesting problem of a template's tokens (``Environment.lex``) as
    ``(line, message)``, or None."""
    brackets = blocks = 0
    tag: str | None = None  # the name of the block tag being read, until its end
    assigns = False
    after_begin = False
    for line, kind, value in tokens:
        if kind == "whitespace":
            continue
        if kind == "block_begin":
            after_begin, tag, assigns = True, None, False
            continue
        if after_begin:
            after_begin = False
            tag = value if kind == "name" else None
            if tag is not None and tag.startswith("end"):
                blocks -= 1
            elif tag in _BLOCK_TAGS:
                blocks += 1
        if kind == "operator":
            if value in _OPEN_BRACKETS:
                brackets += 1
                if brackets > MAX_BRACKETS:
                    return line, f"brackets nested more than {MAX_BRACKETS} deep"
            elif value in _CLOSE_BRACKETS:
                brackets -= 1
            elif value == "=":
                assigns = True
        elif kind == "block_end":
            if tag == "set" and not assigns:  # {% set x %}...{% endset %}
                blocks += 1
            tag = None
        if blocks > MAX_BLOCKS:
            return line, f"blocks nested more than {MAX_BLOCKS} deep"
    return None


def tree_depth_problem(tree: nodes.Node) -> tuple[int, str] | None:
    """``(line, message)`` when ``tree`` is deeper than :data:`MAX_TREE_DEPTH`, or None."""
    pending: list[tuple[nodes.Node, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_TREE_DEPTH:
            return node.lineno, f"expressions nested more than {MAX_TREE_DEPTH} deep"
        pending.extend((child, depth + 1) for child in node.iter_child_nodes())
    return None
