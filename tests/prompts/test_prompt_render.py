"""Rendering: chat messages, compile-once caching, StrictUndefined, the sandbox."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from promptlab.prompts import (
    PromptSpec,
    Renderer,
    RenderError,
    VariableError,
    VariableSpec,
    VariantSpec,
)


def spec(template: str, system: str | None = None, **variant: Any) -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "p",
            "variables": [
                {"name": "code", "required": True, "trim": True},
                {"name": "lang"},
                {"name": "items", "type": "array", "default": ["a", "b"]},
            ],
            "variants": [
                {
                    "name": "v",
                    "model": "simulated/good",
                    "template": template,
                    "system": system,
                    **variant,
                }
            ],
        }
    )


def test_renders_system_then_user_message() -> None:
    prompt = spec("Summarize:\n{{ code }}", system="You are a {{ lang }} expert.")
    messages = Renderer().render(prompt, prompt.champion, {"code": "x = 1", "lang": "Python"})
    assert messages == [
        {"role": "system", "content": "You are a Python expert."},
        {"role": "user", "content": "Summarize:\nx = 1"},
    ]


def test_without_system_there_is_only_the_user_message() -> None:
    prompt = spec("{{ code }}")
    assert Renderer().render(prompt, "v", {"code": "hi"}) == [{"role": "user", "content": "hi"}]


def test_control_flow_and_optional_variables() -> None:
    template = (
        "Code:\n{{ code }}\n"
        "{% if lang is defined %}\nLanguage: {{ lang }}\n{% endif %}\n"
        "{% for item in items %}- {{ item }}\n{% endfor %}"
    )
    prompt = spec(template)
    renderer = Renderer()
    without = renderer.validate_and_render(prompt, "v", {"code": " c "})
    assert without[0]["content"] == "Code:\nc\n- a\n- b\n"
    with_lang = renderer.validate_and_render(prompt, "v", {"code": "c", "lang": "go", "items": []})
    assert with_lang[0]["content"] == "Code:\nc\nLanguage: go\n"


def test_validate_and_render_rejects_bad_values() -> None:
    prompt = spec("{{ code }}")
    with pytest.raises(VariableError, match="variable 'code': required"):
        Renderer().validate_and_render(prompt, "v", {})


def test_templates_compile_once_per_version() -> None:
    prompt = spec("{{ code }}", system="sys {{ lang }}")
    renderer = Renderer()
    renderer.render(prompt, "v", {"code": "1", "lang": "a"})
    second = renderer.render(prompt, "v", {"code": "2", "lang": "b"})
    assert renderer.compilations == 1
    assert second[1]["content"] == "2"

    edited = prompt.with_variant(prompt.champion.model_copy(update={"template": "new {{ code }}"}))
    assert renderer.render(edited, "v", {"code": "3", "lang": "c"})[1]["content"] == "new 3"
    assert renderer.compilations == 2
    renderer.render(prompt, "v", {"code": "4", "lang": "d"})  # the old version is still cached
    assert renderer.compilations == 2


def test_cache_is_bounded() -> None:
    renderer = Renderer(max_cached=1)
    first, second = spec("a {{ code }}"), spec("b {{ code }}")
    for prompt in (first, second, first):
        renderer.render(prompt, "v", {"code": "x"})
    assert renderer.compilations == 3


def test_undefined_variables_fail_loudly() -> None:
    # Rules refuse an undeclared name when a prompt is built; model_construct skips them,
    # and the renderer still fails loudly on the name.
    variant = VariantSpec(name="v", model="simulated/good", template="{{ code }} {{ lang }}")
    prompt = PromptSpec.model_construct(
        id="p", variables=(VariableSpec(name="code"),), variants=(variant,)
    )
    with pytest.raises(
        RenderError, match=r"prompt 'p', variant 'v': undefined: 'lang' is undefined"
    ) as caught:
        Renderer().render(prompt, "v", {"code": "x"})
    assert caught.value.variables == ()  # not a declared variable: nothing to name
    with pytest.raises(RenderError, match="undefined") as caught:
        Renderer().render(spec("{{ items.missing }}"), "v", {"items": []})
    assert caught.value.variables == ("items",)


ESCAPES = [
    "{{ code.__class__ }}",
    "{{ code.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ code['__class__'] }}",
    "{{ code|attr('__class__') }}",
    "{{ items|map(attribute='__class__')|list }}",
    "{{ lipsum.__globals__ }}",
    "{{ code.mro }}",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_sandbox_escapes_are_refused_when_registered(template: str) -> None:
    with pytest.raises(ValidationError, match="templates may not reach internals"):
        spec(template)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ code|attr(lang) }}", "attr() with a computed name"),
        ("{% include 'other' %}", "a prompt is one template"),
        ("{% import 'macros' as m %}{{ code }}", "a prompt is one template"),
    ],
)
def test_templates_that_cannot_be_checked_statically_are_refused(
    template: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        spec(template)


@pytest.mark.parametrize("template", ESCAPES[:4])
def test_the_renderer_still_blocks_escapes_that_skipped_validation(template: str) -> None:
    # model_construct skips every rule: the sandbox is the second line of defence.
    variant = VariantSpec.model_construct(
        name="v", model="simulated/good", params={}, system=None, template=template,
        champion=True, origin="api", parent=None, strategy=None, status="active",
    )  # fmt: skip
    prompt = PromptSpec.model_construct(id="p", variables=(), variants=(variant,))
    with pytest.raises(RenderError, match="unsafe operation blocked"):
        Renderer().render(prompt, variant, {"code": "x"})


def test_values_are_data_never_templates() -> None:
    prompt = spec("Summarize: {{ code }}", system="{{ lang }}")
    hostile = "{{ 7 * 7 }} {% for x in range(3) %}{{ x }}{% endfor %} {{ ''.__class__ }}"
    messages = Renderer().render(prompt, "v", {"code": hostile, "lang": "{{ code }}"})
    assert messages[0]["content"] == "{{ code }}"
    assert messages[1]["content"] == f"Summarize: {hostile}"


def test_no_html_escaping() -> None:
    prompt = spec("{{ code }}")
    assert Renderer().render(prompt, "v", {"code": "<a & 'b'>"})[0]["content"] == "<a & 'b'>"


def test_template_runtime_errors_become_render_errors() -> None:
    prompt = spec("{{ code + 1 }}")
    with pytest.raises(RenderError, match="TypeError") as caught:
        Renderer().render(prompt, "v", {"code": "x"})
    error = caught.value
    assert error.reason == "a value of a type the template cannot use (TypeError)"
    assert (error.part, error.line, error.variables) == ("user", 1, ("code",))


def test_variant_may_be_given_by_name_or_spec() -> None:
    prompt = spec("{{ code }}")
    renderer = Renderer()
    assert renderer.render(prompt, "v", {"code": "x"}) == renderer.render(
        prompt, prompt.variant("v"), {"code": "x"}
    )
    other = VariantSpec(name="w", model="simulated/good", template="{{ code }}!")
    assert renderer.render(prompt.with_variant(other), "w", {"code": "x"})[0]["content"] == "x!"
