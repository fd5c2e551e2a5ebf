"""The generated parts of the docs (docs/hooks/reference.py) say what the code says."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel, ConfigDict

from promptlab.cli import build_parser
from promptlab.providers.settings import ProviderSettings
from promptlab.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_reference", ROOT / "docs" / "hooks" / "reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leaves(model: type[BaseModel], env: list[str]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _leaves(annotation, [*env, name])
        elif name == "providers" and model is Settings:
            out += _leaves(ProviderSettings, [*env, "providers", "NAME"])
        else:
            out.append(("PROMPTLAB_" + "__".join(p.upper() for p in [*env, name]), field))
    return out


def test_every_setting_is_in_the_configuration_reference(reference: ModuleType) -> None:
    text = reference.settings_reference()
    leaves = _leaves(Settings, [])
    assert len(leaves) > 50
    for env, field in leaves:
        row = next((line for line in text.splitlines() if f"`{env}`" in line), None)
        assert row, env
        description = " ".join(field.description.replace("``", "`").split())  # type: ignore[attr-defined]
        assert description.replace("|", "\\|") in row, env
    # The shipped default of the promotion test's margin, as the code has it.
    min_lift = next(
        line for line in text.splitlines() if "`PROMPTLAB_LEARNER__PROMOTION__MIN_LIFT`" in line
    )
    assert "`0.0`" in min_lift


def test_a_setting_without_a_docstring_fails_the_build(reference: ModuleType) -> None:
    class Section(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)

        documented: int = 1
        """Has one."""
        undocumented: int = 2

    class Root(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)

        section: Section = Section()
        """A section."""

    with pytest.raises(reference.GenerateError, match="undocumented"):
        reference.settings_reference(Root)


def test_every_command_is_in_the_cli_reference(reference: ModuleType) -> None:
    text = reference.cli_reference()
    headings = re.findall(r"^#+ `(promptlab[^`]*)`$", text, re.M)
    progs = [parser.prog for parser in reference.walk(build_parser())]
    assert headings == progs
    # Every command `promptlab --help` lists has its section.
    listed = re.findall(r"^    (\w[\w-]*)  ", build_parser().format_help(), re.M)
    assert len(listed) > 10 and {f"promptlab {name}" for name in listed} <= set(headings)
    assert {"promptlab experiment run", "promptlab prompts validate"} <= set(headings)
    assert "--no-learner" in text  # an option of serve, from its parser


def test_benchmark_tables_come_from_the_result_files(reference: ModuleType) -> None:
    peers = json.loads((ROOT / "bench" / "results" / "peers.json").read_text())
    table = reference.bench_peers()
    for name, row in peers["rows"].items():
        line = next(line for line in table.splitlines() if line.startswith(f"| {name}"))
        assert f"{row['added_p50_1']:.3f} ms" in line
    simulation = json.loads((ROOT / "bench" / "results" / "simulation.json").read_text())
    assert len(reference.bench_simulation().splitlines()) == 2 + 2 + len(simulation["rows"])
    real = json.loads((ROOT / "bench" / "results" / "real.json").read_text())
    table = reference.bench_real()
    for run in real["runs"]:
        promoted = run["promotion"]
        if promoted is not None:
            assert f"by call {promoted['seen_by_call']:,}" in table
        for name, held in run["held_out"].items():
            assert f"{name} {held['accuracy']:.1%}" in table


def test_an_unknown_marker_fails_the_build(reference: ModuleType) -> None:
    assert reference.expand("a\n<!-- generate: bench-evolution -->\nb").startswith("a\nMeasured")
    with pytest.raises(reference.GenerateError, match="no-such-part"):
        reference.expand("<!-- generate: no-such-part -->")
