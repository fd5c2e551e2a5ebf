"""Optional variables without a default: an empty value when left out, and the uses
that cannot work with one are refused when the prompt is built; the sandbox's limits;
what a rendering failure says."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jinja2 import Undefined
from pydantic import ValidationError

from promptlab.prompts import PromptSpec, Renderer, RenderError
from promptlab.prompts.sandbox import MAX_POWER_BITS, MAX_REPEAT, PromptSandbox, absent
from promptlab.prompts.templates import FAILS_ON_ABSENT_FILTERS, FAILS_ON_ABSENT_TESTS

VARIABLES = [
    {"name": "n", "type": "integer"},  # optional, no default: may be absent
    {"name": "tags", "type": "array"},  # optional, no default
    {"name": "text", "required": True},
    {"name": "lang", "default": "en"},
]


def spec(template: str, system: str | None = None) -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "p",
            "variables": VARIABLES,
            "variants": [
                {"name": "v", "model": "simulated/good", "template": template, "system": system}
            ],
        }
    )


def render(template: str, **values: Any) -> str:
    prompt = spec(template)
    return Renderer().validate_and_render(prompt, "v", {"text": "t", **values})[-1]["content"]


@pytest.mark.parametrize(
    ("template", "absent_out", "given_out"),
    [
        ("[{{ n }}]", "[]", "[3]"),
        ("{% if n %}n={{ n }}{% else %}none{% endif %}", "none", "n=3"),
        ("{% if n is defined %}n={{ n }}{% endif %}.", ".", "n=3."),
        ("{{ n or 'none' }}", "none", "3"),
        ("{{ n | default(7) }}", "7", "3"),
        ("{{ n | default(0) + 1 }}", "1", "4"),
        ("{{ (n or 0) * 2 }}", "0", "6"),
        ("{{ n and n + 1 }}", "", "4"),
        ("{{ n + 1 if n else 'none' }}", "none", "4"),
        ("{{ n is none }}", "False", "False"),
        ("{{ n | string | length }}", "0", "1"),
        ("{{ 'x' ~ n }}", "x", "x3"),
    ],
)
def test_an_absent_optional_variable_is_an_empty_value_the_template_can_test(
    template: str, absent_out: str, given_out: str
) -> None:
    assert render(template) == absent_out
    assert render(template, n=None) == absent_out  # null is the same as left out
    assert render(template, n=3) == given_out


def test_absent_sequences_iterate_as_empty_and_text_filters_see_empty_text() -> None:
    template = "{% for t in tags %}{{ t }},{% endfor %}|{{ tags | join('-') }}|{{ tags | upper }}"
    assert render(template) == "||"
    assert render(template, tags=["a", "b"]) == "a,b,|a-b|['A', 'B']"


def test_the_renderer_passes_absent_values_only_for_declared_variables() -> None:
    prompt = spec("{{ text }}{{ n }}")
    # The values given are not changed; absent ones are not recorded or validated.
    values = prompt.variables_validator({"text": "t"})
    assert values == {"text": "t", "lang": "en"}
    assert Renderer().render(prompt, "v", values)[0]["content"] == "t"
    assert isinstance(absent("n"), Undefined) and absent("n") is absent("n")


REFUSED = [
    ("{{ n + 1 }}", "'n' is optional without a default, and arithmetic (+) on it fails"),
    ("{{ 10 / n }}", "'n' is optional without a default, and arithmetic (/) on it"),
    ("{{ -n }}", "'n' is optional without a default, and arithmetic on it"),
    ("{{ '#' * n }}", "and arithmetic (*) on it"),
    ("{% if n > 3 %}big{% endif %}", "'n' is optional without a default, and an ordering"),
    ("{{ 1 < n < 5 }}", "and an ordering comparison of it"),
    ("{{ tags.first }}", "'tags' is optional without a default, and its attribute 'first'"),
    ("{{ tags[0] }}", "'tags' is optional without a default, and an item of it"),
    ("{{ text[n] }}", "'n' is optional without a default, and it as an item index"),
    ("{{ tags() }}", "'tags' is optional without a default, and calling it"),
    ("{{ tags | first }}", "'tags' is optional without a default, and filter 'first' on it"),
    ("{{ tags | tojson }}", "and filter 'tojson' on it"),
    ("{{ n | int }}", "'n' is optional without a default, and filter 'int' on it"),
    ("{{ text | truncate(n) }}", "'n' is optional without a default, and it as an argument "
                                 "of filter 'truncate'"),
    ("{{ text | indent(width=n) }}", "and it as an argument of filter 'indent'"),
    ("{{ n is odd }}", "'n' is optional without a default, and test 'odd' on it"),
    ("{{ 6 is divisibleby(n) }}", "and it as an argument of test 'divisibleby'"),
    ("{% if lang %}{{ n + 1 }}{% endif %}", "arithmetic (+) on it"),  # guards another
    ("{% if n %}{% else %}{{ n + 1 }}{% endif %}", "arithmetic (+) on it"),  # else: not
    ("{{ n or n + 1 }}", "arithmetic (+) on it"),  # after `or`, n is empty
    ("text\n\n{{ n + 1 }}", "line 3: 'n' is optional without a default"),
]  # fmt: skip


@pytest.mark.parametrize(("template", "message"), REFUSED)
def test_uses_that_fail_on_an_absent_value_are_refused_outside_a_guard(
    template: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)) as caught:
        spec(template)
    assert "fails for every call that leaves it out: guard it" in str(caught.value)


def test_the_system_template_is_checked_too() -> None:
    with pytest.raises(ValidationError, match=r"variants\[0\]\.system"):
        spec("{{ text }}", system="You count to {{ n + 1 }}.")


ACCEPTED = [
    "{% if n %}{{ n + 1 }}{% endif %}",
    "{% if n is defined %}{{ n * 2 }} {{ n > 3 }}{% endif %}",
    "{% if n is defined and n > 3 %}big{% endif %}",
    "{% if lang %}{% elif n %}{{ n - 1 }}{% endif %}",
    "{{ n + 1 if n is defined else '' }}",
    "{{ (n or 0) + 1 }} {{ n | default(0) + 1 }} {{ n | default(0) | int }}",
    "{{ tags | join(', ') }} {{ tags | length }} {{ 3 in tags }} {{ n == 3 }}",
    "{{ text | default(n) }} {{ tags | join(n) }} {{ text is eq(n) }} {{ n is sameas(none) }}",
    "{{ text | truncate(n if n else 10) }} {{ text | truncate(n or 10) }}",
    "{% for n in [1, 2] %}{{ n + 1 }}{% endfor %}",  # a loop variable, not the declared n
    "{% set n = 4 %}{{ n + 1 }}",
    "{{ text + '!' }} {{ text | first }} {{ lang | upper }} {{ lang[0] }}",  # never absent
]


@pytest.mark.parametrize("template", ACCEPTED)
def test_guarded_uses_and_variables_that_cannot_be_absent_are_accepted(template: str) -> None:
    spec(template)
    render(template)  # and they render, with n and tags left out
    render(template, n=5, tags=["a", "b"])


def probe_fails(source: str) -> bool:
    try:
        PromptSandbox().from_string(source).render(n=absent("n"))
    except Exception:
        return True
    return False


# Arguments some filters and tests need to be called at all.
FILTER_ARGS = {"attr": "('x')", "batch": "(2)", "groupby": "('x')", "map": "('upper')",
               "rejectattr": "('x')", "replace": "('a', 'b')", "selectattr": "('x')",
               "slice": "(2)"}  # fmt: skip
TEST_ARGS = {"divisibleby": "(3)", "in": "([1])", "sameas": "(1)"} | {
    name: "(1)" for name in ("eq", "ne", "lt", "le", "gt", "ge", "equalto", "greaterthan",
                             "lessthan")
}  # fmt: skip


def test_the_lists_of_filters_and_tests_that_fail_on_an_absent_value_match_jinja() -> None:
    env = PromptSandbox()
    failing_filters = {
        name
        for name in env.filters
        if probe_fails(f"{{{{ (n | {name}{FILTER_ARGS.get(name, '')}) | string }}}}")
    }
    assert failing_filters == FAILS_ON_ABSENT_FILTERS
    failing_tests = {
        name
        for name in env.tests
        # "test" takes a test's name; the operator aliases ("==", "<") are the named ones.
        if name.isidentifier()
        and name != "test"
        and probe_fails(f"{{{{ n is {name}{TEST_ARGS.get(name, '')} }}}}")
    }
    assert failing_tests == FAILS_ON_ABSENT_TESTS


@pytest.mark.parametrize(
    ("template", "values"),
    [
        ("{% if n %}{{ '#' * n }}{% endif %}", {"n": MAX_REPEAT + 1}),
        ("{% if n %}{{ n * '#' }}{% endif %}", {"n": 2**62}),
        ("{% if n and tags %}{{ tags * n }}{% endif %}", {"tags": [1, 2], "n": MAX_REPEAT}),
        ("{% if n %}{{ 2 ** n }}{% endif %}", {"n": MAX_POWER_BITS + 1}),
        ("{% if n %}{{ n ** n }}{% endif %}", {"n": 2**40}),
        ("{% if n %}{{ text | center(n) }}{% endif %}", {"n": MAX_REPEAT + 1}),
        ("{% if n %}{{ text | indent(n) }}{% endif %}", {"n": MAX_REPEAT + 1}),
        ("{% if n %}{{ text | indent(width=n) }}{% endif %}", {"n": 2**62}),
        ("{% if n %}{{ text | indent(n) }}{% endif %}", {"n": 1000, "text": "\n" * 1000}),
        (
            "{% if tags %}{{ text | indent(tags | join) }}{% endif %}",
            {"tags": ["x" * 1000], "text": "\n" * 1000, "n": 1},
        ),
        ("{{ tags | batch(n, 0) | list if n else '' }}", {"tags": [1], "n": 10**12}),
    ],
)
def test_values_cannot_make_a_template_build_unbounded_output(
    template: str, values: dict[str, Any]
) -> None:
    with pytest.raises(RenderError, match="limit exceeded") as caught:
        render(template, **values)
    assert caught.value.reason == "a value beyond a rendering limit"
    assert set(caught.value.variables) & {"n", "tags"}  # the value that asked for too much


def test_within_the_limits_repetition_and_powers_work() -> None:
    template = "{% if n %}{{ '#' * n }} {{ 2 ** n }} {{ 'ab' | center(n + 2) }}{% endif %}"
    assert render(template, n=3) == "### 8   ab "
    assert render("{% if n %}{{ text | indent(n, first=true) }}{% endif %}", n=2, text="a\nb") == (
        "  a\n  b"
    )
    assert render("{% if n %}{{ (-2) ** n }} {{ 2 ** -n }}{% endif %}", n=3) == "-8 0.125"


def test_a_failure_names_the_part_the_line_and_the_variables_it_reads() -> None:
    prompt = spec(
        "{{ text }}\n{% for t in tags or [] %}\n{{ t.name | upper }}\n{% endfor %}",
        system="Be {{ lang }}.\n{{ 100 // (text | length) }}",
    )
    renderer = Renderer()
    with pytest.raises(RenderError) as caught:
        renderer.validate_and_render(prompt, "v", {"text": "x", "tags": [{"id": 1}]})
    error = caught.value
    # A loop variable is named by the variable it comes from.
    assert (error.part, error.line, error.variables) == ("user", 3, ("tags",))
    assert error.reason == "a value it reads is missing (an item, key or attribute)"
    assert "'name'" not in error.reason  # the reason quotes no template text
    with pytest.raises(RenderError) as caught:
        renderer.validate_and_render(prompt, "v", {"text": ""})
    error = caught.value
    assert (error.part, error.line, error.variables, error.reason) == (
        "system", 2, ("text",), "a division by zero",
    )  # fmt: skip
    assert "(system template, line 2, reading 'text')" in str(error)


def test_an_absent_variable_is_named_before_the_given_ones_on_its_line() -> None:
    # `is not defined` guards nothing, but it reads n: the static check lets it through.
    prompt = spec("{% if n is not defined %}{{ text ~ n.real }}{% endif %}")
    with pytest.raises(RenderError, match="was not given") as caught:
        Renderer().validate_and_render(prompt, "v", {"text": "x"})
    assert caught.value.variables == ("n",)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Static.\n{{ 1 // 0 }}", "line 2: cannot be rendered: ZeroDivisionError"),
        ("{{ '#' * 2000000 }}", "breaks a rendering bound: a repetition"),
        ("{{ [] | first }}", "cannot be rendered: UndefinedError"),
    ],
)
def test_a_template_that_reads_no_variable_and_cannot_render_is_refused(
    template: str, message: str
) -> None:
    # It would fail the same way on every call: it is refused when it is registered.
    with pytest.raises(ValidationError, match=re.escape(message)):
        spec("{{ text }}", system=template)
