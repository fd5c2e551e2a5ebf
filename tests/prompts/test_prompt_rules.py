"""Rules that keep bad prompts out before any traffic: names, params, lifecycle, weights,
providers, and the values a call may carry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from promptlab.prompts import (
    ALLOWED_PARAMS,
    PromptSpec,
    VariableError,
    VariantSpec,
    load_prompt_file,
    validate_files,
)
from promptlab.prompts.loader import PromptFileError

WriteToml = Callable[[str, str], Path]


def prompt(*variants: dict[str, Any], **fields: Any) -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "p",
            "variables": [{"name": "code"}],
            "variants": list(variants) or [variant("a")],
            **fields,
        }
    )


def variant(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "model": "openai/gpt-4o-mini", "template": "{{ code }}", **fields}


def messages(exc: ValidationError) -> str:
    return "\n".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "data",
    [
        {"id": "p\n", "variants": [variant("a")]},
        {"id": "p", "variants": [variant("a\n")]},
        {"id": "p", "variants": [variant("a\r\nX-Injected: 1")]},
        {"id": "p", "variants": [variant("a", model="openai/gpt-4o\n")]},
        {"id": "p", "variants": [variant("a", model="openai/gpt 4o")]},
        {"id": "p", "variables": [{"name": "code\n"}], "variants": [variant("a")]},
    ],
)
def test_a_trailing_newline_or_cr_lf_in_a_name_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PromptSpec.model_validate(data)


# --------------------------------------------------------------------------- params


def test_a_misspelt_parameter_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ValidationError) as caught:
        VariantSpec.model_validate(variant("a", params={"temprature": 0.3}))
    assert "temprature: unknown model parameter; did you mean 'temperature'?" in messages(
        caught.value
    )


@pytest.mark.parametrize(
    "key", ["api_base", "base_url", "extra_headers", "api_key", "headers", "Api_Base"]
)
def test_parameters_that_redirect_a_call_or_carry_credentials_are_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="a variant cannot choose where a call goes"):
        VariantSpec.model_validate(variant("a", params={key: "http://169.254.169.254/"}))


def test_the_usual_openai_parameters_are_allowed() -> None:
    params = {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 300,
        "seed": 7,
        "stop": ["\n\n"],
        "response_format": {"type": "json_object"},
        "tools": [],
    }
    assert VariantSpec.model_validate(variant("a", params=params)).params == params
    assert set(params) <= ALLOWED_PARAMS


# --------------------------------------------------------------------------- lifecycle


def test_status_defaults_to_active_and_travels_in_the_event() -> None:
    spec = prompt(variant("a"), variant("b", status="draft"))
    assert [v.status for v in spec.variants] == ["active", "draft"]
    events = spec.registered_events()
    assert [e.status for e in events] == ["active", "draft"]
    # A draft announced later as active is a new fact: it gets another event id.
    active_b = prompt(variant("a"), variant("b")).registered_events()[1]
    assert active_b.event_id != events[1].event_id


def test_the_champion_must_be_active_and_some_variant_must_be() -> None:
    with pytest.raises(ValidationError, match="the champion must be active, not deprecated"):
        prompt(variant("a", champion=True, status="deprecated"), variant("b"))
    with pytest.raises(ValidationError, match="at least one variant must be active"):
        prompt(variant("a", status="draft"))


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValidationError):
        prompt(variant("a", status="retired"))


# --------------------------------------------------------------------------- weights


def test_fixed_weights_must_name_every_active_variant() -> None:
    with pytest.raises(ValidationError) as caught:
        prompt(
            variant("a"),
            variant("b"),
            variant("c", status="draft"),
            routing={"strategy": "fixed", "weights": {"a": 1}},
        )
    text = messages(caught.value)
    assert "'b' has no weight under routing.weights" in text
    assert "'c'" not in text  # a draft is never routed: it needs no weight
    ok = prompt(
        variant("a"), variant("b"), routing={"strategy": "fixed", "weights": {"a": 1, "b": 0}}
    )
    assert ok.routing.weights == {"a": 1, "b": 0}


# --------------------------------------------------------------------------- event mapping


def test_a_variant_survives_the_trip_through_its_event() -> None:
    original = VariantSpec.model_validate(
        variant(
            "b",
            system="Be brief.",
            params={"temperature": 0.1},
            origin="mutation",
            parent="a",
            strategy="rephrase",
            status="draft",
        )
    )
    event = original.to_event("p", [{"name": "code"}])
    assert (event.prompt_id, event.variant, event.version) == ("p", "b", original.version)
    assert event.variables == [{"name": "code"}]
    assert VariantSpec.from_event(event) == original


def test_an_event_with_a_refused_variant_does_not_become_one() -> None:
    event = VariantSpec.model_validate(variant("b")).to_event("p")
    bad = event.model_copy(update={"params": {"api_base": "http://elsewhere"}})
    with pytest.raises(ValidationError):
        VariantSpec.from_event(bad)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("declaration", "value", "message"),
    [
        ({"name": "code"}, "a\x00b", "contains a NUL character"),
        ({"name": "code"}, "a\ud800b", "lone surrogate (U+D800)"),
        ({"name": "code", "type": "array"}, ["ok", "x\x00"], "NUL"),
        ({"name": "code", "type": "object"}, {"k\udfff": 1}, "a key contains a lone surrogate"),
    ],
)
def test_values_that_are_not_text_are_refused(
    declaration: dict[str, Any], value: Any, message: str
) -> None:
    spec = PromptSpec.model_validate(
        {"id": "p", "variables": [declaration], "variants": [variant("a")]}
    )
    with pytest.raises(VariableError) as caught:
        spec.variables_validator({"code": value})
    assert caught.value.rule == "text"
    assert message in caught.value.message


def test_ordinary_unicode_is_text() -> None:
    spec = prompt()
    assert spec.variables_validator({"code": "héllo 👋 世界"}) == {"code": "héllo 👋 世界"}


# --------------------------------------------------------------------------- providers


def test_an_unconfigured_provider_is_reported_with_every_other_problem(
    write_toml: WriteToml,
) -> None:
    text = (
        'id = "p"\n[[variables]]\nname = "code"\n'
        '[[variants]]\nname = "a"\nmodel = "anthropic/claude"\ntemplate = "{{ code }}"\n'
        '[[variants]]\nname = "b"\nmodel = "openai/gpt-4o-mini"\ntemplate = "{{ code }}"\n'
        "params = { temprature = 0.5 }\n"
    )
    path = write_toml("p.toml", text)
    problems = {p.field: p.message for p in validate_files([path], providers={"openai"})}
    assert set(problems) == {"variants[0].model", "variants[1].params.temprature"}
    assert (
        "provider 'anthropic' is not configured (configured: openai)"
        in problems["variants[0].model"]
    )
    with pytest.raises(PromptFileError):
        load_prompt_file(path, providers={"openai", "simulated"})
    assert validate_files([path]) == [
        p for p in validate_files([path], providers={"openai"}) if p.field != "variants[0].model"
    ]


def test_the_cli_checks_providers_against_the_settings(
    write_toml: WriteToml, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from promptlab.cli import main

    config = tmp_path / "promptlab.toml"
    config.write_text('[providers.local]\nkind = "openai"\napi_base = "http://127.0.0.1:1/v1"\n')
    path = write_toml(
        "p.toml",
        'id = "p"\n[[variants]]\nname = "a"\nmodel = "local/m"\ntemplate = "hi"\n'
        '[[variants]]\nname = "b"\nmodel = "groq/llama"\ntemplate = "hi"\n',
    )
    assert main(["prompts", "validate", "--config", str(config), str(path)]) == 1
    out = capsys.readouterr().out
    assert "variants[1].model: provider 'groq' is not configured" in out
    assert "variants[0]" not in out


def test_an_embedding_model_of_an_unconfigured_provider_is_a_problem_of_its_field(
    write_toml: WriteToml,
) -> None:
    text = (
        'id = "p"\n[[variables]]\nname = "text"\n'
        "[learning]\ncapture = true\n"
        'demos = { embedding_model = "nowhere/e" }\n'
        '[[variants]]\nname = "a"\nmodel = "openai/m"\ntemplate = "{{ text }}"\n'
        'demos = { pool = "production", embedding_model = "opnai/text-embedding-3-small" }\n'
    )
    path = write_toml("p.toml", text)
    problems = {p.field: p.message for p in validate_files([path], providers={"openai"})}
    assert set(problems) == {"variants[0].demos.embedding_model", "learning.demos.embedding_model"}
    assert "provider 'opnai' is not configured" in problems["variants[0].demos.embedding_model"]
    assert "did you mean 'openai'?" in problems["variants[0].demos.embedding_model"]
    assert "provider 'nowhere' is not configured" in problems["learning.demos.embedding_model"]


def test_a_misspelt_provider_gets_a_did_you_mean(write_toml: WriteToml) -> None:
    text = 'id = "p"\n[[variants]]\nname = "a"\nmodel = "opnai/gpt-4o-mini"\ntemplate = "hi"\n'
    path = write_toml("p.toml", text)
    [problem] = validate_files([path], providers={"openai", "simulated"})
    assert problem.message == (
        "provider 'opnai' is not configured (configured: openai, simulated); did you mean 'openai'?"
    )
    [problem] = validate_files([path], providers={"local"})
    assert problem.message.endswith("add [providers.opnai] to promptlab.toml")
