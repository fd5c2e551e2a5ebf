"""A prompt's ``app_system``: what a routed call does with the app's own instructions.

DSPy (and other frameworks) put their instructions and output format in a system
message; by default the variant's templates replace it, and a prompt can keep it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MakeSidecar, summarize_prompt

from promptlab.prompts import PromptFileError, PromptSpec, load_prompt_file

APP_MESSAGES = [
    {"role": "system", "content": "Answer with [[ ## summary ## ]] then the summary."},
    {"role": "user", "content": "and shorter please"},
    {"role": "developer", "content": "Never mention the weather."},
]
V2_SYSTEM = {"role": "system", "content": "You are terse."}
V2_USER = {"role": "user", "content": "TL;DR (python): print(1)"}


def prompt(app_system: str | None) -> PromptSpec:
    data = summarize_prompt(strategy="fixed", weights={"v1": 0.0, "v2": 1.0}).model_dump(
        mode="json", exclude_defaults=True
    )
    if app_system is not None:
        data["app_system"] = app_system
    return PromptSpec.model_validate(data)


@pytest.mark.parametrize(
    ("app_system", "expected"),
    [
        (None, [V2_SYSTEM, V2_USER, APP_MESSAGES[1]]),  # the default: as before, dropped
        ("drop", [V2_SYSTEM, V2_USER, APP_MESSAGES[1]]),
        ("prepend", [APP_MESSAGES[0], APP_MESSAGES[2], V2_SYSTEM, V2_USER, APP_MESSAGES[1]]),
        ("append", [V2_SYSTEM, APP_MESSAGES[0], APP_MESSAGES[2], V2_USER, APP_MESSAGES[1]]),
    ],
)
async def test_the_prompt_chooses_where_the_apps_instructions_go(
    make_sidecar: MakeSidecar, app_system: str | None, expected: list[dict[str, str]]
) -> None:
    sidecar = await make_sidecar(prompts=[prompt(app_system)])
    await sidecar.client().chat.completions.create(
        model="promptlab/summarize",
        messages=APP_MESSAGES,  # type: ignore[arg-type]
        extra_body={"promptlab": {"variables": {"code": "print(1)"}}},
    )
    assert sidecar.upstream.requests[-1].body["messages"] == expected


async def test_append_without_a_variant_system_message_goes_first(
    make_sidecar: MakeSidecar,
) -> None:
    data = prompt("append").model_dump(mode="json", exclude_defaults=True)
    data["routing"]["weights"] = {"v1": 1.0, "v2": 0.0}  # v1 has no system template
    sidecar = await make_sidecar(prompts=[PromptSpec.model_validate(data)])
    await sidecar.client().chat.completions.create(
        model="promptlab/summarize",
        messages=APP_MESSAGES[:2],  # type: ignore[arg-type]
        extra_body={"promptlab": {"variables": {"code": "print(1)"}}},
    )
    assert sidecar.upstream.requests[-1].body["messages"] == [
        APP_MESSAGES[0],
        {"role": "user", "content": "Summarize: print(1)"},
        APP_MESSAGES[1],
    ]


def test_a_prompt_file_names_a_known_mode(tmp_path: Path) -> None:
    variant = '[[variants]]\nname = "a"\nmodel = "openai/m"\ntemplate = "hi"\n'
    path = tmp_path / "p.toml"
    path.write_text('id = "p"\napp_system = "prepend"\n' + variant)
    assert load_prompt_file(path).app_system == "prepend"
    path.write_text('id = "p"\napp_system = "merge"\n' + variant)
    with pytest.raises(PromptFileError) as caught:
        load_prompt_file(path)
    [problem] = caught.value.problems
    assert problem.field == "app_system" and "'drop', 'prepend' or 'append'" in problem.message
    path.write_text('id = "p"\napp_sytem = "prepend"\n' + variant)
    with pytest.raises(PromptFileError) as caught:
        load_prompt_file(path)
    assert "did you mean 'app_system'?" in str(caught.value)
