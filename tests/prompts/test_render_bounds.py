"""Every render runs within its bounds: iterations, sizes, output, work, time, nesting.

Each bomb is refused with the bound it breaks, in bounded time and memory (measured
with tracemalloc's peak); ordinary templates render exactly as Jinja2's own sandbox
renders them.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from promptlab.events.models import PromptRegistered
from promptlab.prompts import (
    PromptSpec,
    Renderer,
    RenderError,
    RenderLimitError,
    RenderLimits,
    SpecError,
)
from promptlab.prompts.definition import spec_from_event
from promptlab.prompts.limits import DEFAULT_LIMITS
from promptlab.prompts.nesting import MAX_BLOCKS, MAX_BRACKETS
from promptlab.prompts.sandbox import PromptSandbox, render
from promptlab.prompts.templates import check_template

ENV = PromptSandbox()


def run(source: str, limits: RenderLimits = DEFAULT_LIMITS, **values: Any) -> str:
    return render(ENV.from_string(source), values, limits)


BOMBS = [
    ("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
     "loop iterations|longer than"),
    ("{{ '{:>200000000}'.format(v) }}", "format width or precision"),
    ("{{ '{:.999999999f}'.format(1.5) }}", "format width or precision"),
    ("{{ '{:>{w}}'.format('x', w=10**8) }}", "format width or precision"),
    ("{{ ('{0}' * 200000).format('x' * 999) }}", "str.format"),
    ("{{ '%300000000d'|format(1) }}", "printf width"),
    ("{{ '%300000000d' % 1 }}", "printf width"),
    ("{{ '%*d' % (300000000, 1) }}", "printf width"),
    ("{{ ('%(a)s' * 200000) % {'a': 'x' * 999} }}", "printf formatting"),
    ("{{ 'x' * 999999 * 2 }}", "repetition"),
    ("{% for i in range(800) %}{{ 'x' * 999999 }}{% endfor %}", "output is longer"),
    ("{% set ns = namespace(x='ab') %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}"
     "{% endfor %}", "concatenation"),
    ("{% set ns = namespace(x='ab') %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}"
     "{% endfor %}", "concatenation"),
    ("{% set l = [1] %}{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}", "list.extend"),
    ("{% set l = [] %}{% for i in range(100000) %}{{ l.append('x' * 999999 ~ i) }}{% endfor %}",
     "built more than"),
    ("{{ (['x' * 99999] * 100000) | join }}", "a join"),
    ("{{ ''.join(['x' * 99999] * 100000) }}", "a join"),
    ("{{ ('x' * 999999) | replace('x', 'yy') }}", "a replace"),
    ("{{ 'abc'.replace('', 'x' * 999999) }}", "a replace"),
    ("{{ 'x'.rjust(10**8) }}{{ 'x'.zfill(10**8) }}", "width"),
    ("{{ ('\\t' * 1000).expandtabs(10**6) }}", "expandtabs"),
    ("{{ 'x' | center(10**8) }}", "width"),
    ("{{ ('a\\n' * 1000) | indent(10**4) }}", "width"),
    ("{{ 'ab'.translate({97: 'x'}) }}", "translate"),
    ("{{ (['x' * 999] * 10000) | string }}", "to text"),
    ("{{ ['x' * 999] * 10000 }}", "to text"),
    ("{{ (['x' * 999] * 10000) | tojson }}", "to text"),
    ("{{ lipsum(100000) }}", "lipsum"),
    ("{{ ('ab ' * 300000) | wordwrap }}", "at most"),
    ("{% set x %}{% for i in range(100000) %}" + "y" * 900 + "{% endfor %}{% endset %}{{ x }}",
     "block's output|longer than"),
    ("{% set ns = namespace(a=['x' * 999] * 10000) %}{{ ns }}", "namespace"),
    ("{{ {'a': ['x' * 999] * 10000}.items() }}", "to text"),
    ("{{ [1, 2] | tojson(indent=1000000) }}", "indent"),
    ("{{ [1, 2] | slice(1000000000) | list }}", "slices"),
    ("{{ [[1] * 1000] * 1000 | sum(start=[]) }}", "numbers only"),
    ("{% set ns = namespace(x=3) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}"
     "{% endfor %}", "product of integers"),
    ("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
     "{{ f(60) }}", "longer than"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "bound"), BOMBS)
def test_a_bomb_is_refused_with_its_bound_in_bounded_time_and_memory(
    source: str, bound: str
) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(RenderLimitError, match=bound):
            run(source, v="x")
        took = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # tracemalloc slows Python down several times: the bound on time is loose here.
    assert took < 2.0
    assert peak < 120 * 2**20, f"{peak / 2**20:.0f} MB"


def test_every_bound_is_a_setting() -> None:
    limits = RenderLimits(
        max_iterations=10, max_output_chars=1_000, max_value_chars=1_000, max_work_chars=5_000
    )
    assert run("{% for i in range(10) %}.{% endfor %}", limits) == "." * 10
    with pytest.raises(RenderLimitError, match="more than 10 loop iterations"):
        run("{% for i in range(11) %}.{% endfor %}", limits)
    with pytest.raises(RenderLimitError, match="output is longer than 1,000"):
        run("{% for i in range(3) %}{{ 'x' * 400 }}{% endfor %}", limits)
    with pytest.raises(RenderLimitError, match="at most 1,000"):
        run("{{ 'x' * 1001 }}", limits)
    with pytest.raises(RenderLimitError, match="built more than 5,000"):
        run("{% for i in range(9) %}{% set y = 'x' * 999 %}{% endfor %}", limits)
    with pytest.raises(RenderLimitError, match=r"longer than 0\.01 s"):
        run(
            "{% for i in range(100000) %}{% set y = i * 2 %}{% endfor %}", RenderLimits(time_s=0.01)
        )


def test_the_renderer_reports_a_broken_bound_as_a_render_error() -> None:
    prompt = PromptSpec.model_validate(
        {
            "id": "p",
            "variables": [{"name": "text"}],
            "variants": [
                {"name": "v", "model": "m/x",
                 "template": "{% for a in text %}{% for b in text %}{{ text }}{% endfor %}{% endfor %}"}
            ],
        }
    )  # fmt: skip
    renderer = Renderer(limits=RenderLimits(max_output_chars=10_000))
    assert renderer.render(prompt, "v", {"text": "ab"}) == [{"role": "user", "content": "ab" * 4}]
    with pytest.raises(RenderError) as failed:
        renderer.render(prompt, "v", {"text": "x" * 5000})
    assert failed.value.reason == "a value beyond a rendering limit"
    assert "output is longer than 10,000" in failed.value.message


NESTED = [
    ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", f"brackets nested more than {MAX_BRACKETS}"),
    ("{% if x %}" * 400 + "y" + "{% endif %}" * 400, f"blocks nested more than {MAX_BLOCKS}"),
    ("{% for a in x %}" * 25 + "y" + "{% endfor %}" * 25, f"blocks nested more than {MAX_BLOCKS}"),
    ("{{ " + " + ".join(["1"] * 3000) + " }}", "expressions nested more than"),
    ("{{ " + "not " * 3000 + "x }}", "nested"),
    ("{{ " + "- " * 3000 + "1 }}", "nested"),
    ("{{ x" + "|lower" * 2000 + " }}", "expressions nested more than"),
]


@pytest.mark.parametrize(("source", "message"), NESTED)
def test_deep_nesting_is_a_syntax_error_not_a_recursion_error(source: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=message):
        ENV.from_string(source)
    problems = check_template(source)
    assert any("nested" in p for p in problems), problems


def test_nesting_within_the_bounds_compiles_and_renders() -> None:
    depth = MAX_BLOCKS
    source = "{% for a in [1] %}" * depth + "y" + "{% endfor %}" * depth
    assert run(source) == "y"
    assert run("{{ " + "(" * MAX_BRACKETS + "2" + ")" * MAX_BRACKETS + " }}") == "2"


def test_recursive_loops_are_refused() -> None:
    source = "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}"
    assert any("recursive loops" in p for p in check_template(source))
    with pytest.raises(TemplateSyntaxError, match="recursive"):
        ENV.from_string(source)


ORDINARY = [
    ("{% for t in tags %}{{ loop.index }}/{{ loop.length }}{{ '' if loop.last else ', ' }}"
     "{% else %}none{% endfor %}", {"tags": ["a", "b", "c"]}),
    ("{% for t in tags %}x{% else %}none{% endfor %}", {"tags": []}),
    ("{% for k, v in d | dictsort %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 2, "a": 1}}),
    ("{% for t in tags if t != 'b' %}{{ t }}{% endfor %}", {"tags": ["a", "b", "c"]}),
    ("{% set x %}[{{ name }}]{% endset %}{{ x ~ '!' }} {{ name + '?' }}", {"name": "n"}),
    ("{% macro b(s) %}<{{ s | upper }}>{% endmacro %}{{ b(name) }}{{ b('y') }}", {"name": "n"}),
    ("{{ '{:>8}|{:.2f}|{}'.format(name, 3.14159, n) }} {{ '%5d|%s' % (n, name) }}",
     {"name": "n", "n": 42}),
    ("{{ '%-6s|' | format(name) }}{{ tags | join(', ') }} {{ name * 3 }} {{ 2 ** 10 }}",
     {"name": "ab", "tags": ["x", "y"]}),
    ("{{ tags | map('upper') | join }} {{ tags | batch(2) | list }} {{ tags }}",
     {"tags": ["x", "y", "z"]}),
    ("{{ text | wordwrap(10) }}|{{ text | indent(2) }}|{{ text | center(30) }}|{{ text | title }}",
     {"text": "the quick brown fox jumps"}),
    ("{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% endfor %}"
     "{{ ns.n }} {{ range(3) | list }} {{ d }}", {"d": {"a": [1, 2]}}),
]  # fmt: skip


@pytest.mark.parametrize(("source", "values"), ORDINARY)
def test_ordinary_templates_render_as_jinja_renders_them(
    source: str, values: dict[str, Any]
) -> None:
    plain = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
    )
    assert run(source, **values) == plain.from_string(source).render(values)


def test_registration_renders_a_template_with_variables_absent_and_refuses_only_bounds() -> None:
    bomb = (
        "{{ code }}{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    )
    assert any("breaks a rendering bound" in p for p in check_template(bomb))
    # Failures that depend on real values are the call's business, not registration's.
    assert check_template("{{ code + 1 }}{% for a in range(100000) %}{% endfor %}") == []
    assert check_template("{{ code }} and {{ code | length }}") == []


def test_a_prompt_arriving_on_the_bus_cannot_carry_an_evaluation_section() -> None:
    spec = {
        "id": "p",
        "evaluation": {"evaluators": [{"kind": "python", "function": "os:system"}]},
        "variants": [{"name": "v", "model": "m/x", "template": "Hi"}],
    }
    event = PromptRegistered(prompt_id="p", version="0" * 16, actor="admin-api", spec=spec)
    with pytest.raises(SpecError, match=r"evaluation.*prompt file"):
        spec_from_event(event)
