"""`promptlab prompts list|show|validate` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from promptlab.cli import main

WriteToml = Callable[[str, str], Path]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, write_toml: WriteToml, issue_toml: str) -> Path:
    """A settings file whose prompts dir holds the issue's prompt."""
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "summarize.toml").write_text(issue_toml, encoding="utf-8")
    return write_toml("promptlab.toml", f'[prompts]\ndir = "{prompts.as_posix()}"\n')


def test_list_shows_id_category_variants_and_champion(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prompts", "list", "--config", str(config)]) == 0
    header, rule, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "CATEGORY", "VARIANTS", "CHAMPION", "MODEL"]
    assert set(rule) == {"─"}
    assert row.split() == ["summarize", "code", "2", "v1_simple", "openai/gpt-4o-mini"]


def test_list_reports_broken_files(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "prompts" / "broken.toml").write_text('id = "b"\n', encoding="utf-8")
    assert main(["--config", str(config), "prompts", "list"]) == 1
    assert (
        capsys.readouterr().err.strip()
        == f"{tmp_path / 'prompts' / 'broken.toml'}: variants: required"
    )


def test_show_prints_the_spec_with_templates(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prompts", "show", "summarize", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("summarize: Summarize a code snippet\n")
    assert "  code: string, required  {'max_length': 5000}" in out
    assert "min_samples=300" in out and "(overrides: {'min_samples': 300})" in out
    assert "variant v1_simple (champion)  version " in out
    assert "  system: |\n    You are a senior engineer.\n" in out
    assert (
        "  template: |\n    Give the purpose, key logic and edge cases of:\n    {{ code }}\n" in out
    )
    assert "params: {'temperature': 0.2}" in out


def test_show_json(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "show", "summarize", "--json", "--config", str(config)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["id"] == "summarize"
    assert [v["name"] for v in data["variants"]] == ["v1_simple", "v2_structured"]
    assert all(len(v["version"]) == 16 for v in data["variants"])


def test_show_unknown_prompt(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "show", "nope", "--config", str(config)]) == 1
    assert "no prompt 'nope'" in capsys.readouterr().err


def test_validate_ok(issue_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "validate", str(issue_file)]) == 0
    assert capsys.readouterr().out == "ok: 1 files\n"


def test_validate_prints_each_problem_and_exits_1(
    write_toml: WriteToml, issue_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = write_toml(
        "broken.toml",
        'id = "broken"\n[[variants]]\nname = "v"\nmodel = "openai/x"\n'
        'template = "a\\nb\\n{{ x }\\n"\nparams = { temperature = 5 }\n',
    )
    assert main(["prompts", "validate", str(issue_file), str(broken)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{broken}: variants[0].params.temperature: 5 is outside 0..2",
        f"{broken}: variants[0].template: line 3: unexpected '}}'",
    ]
    assert "2 problem(s) in 1 of 2 file(s)" in captured.err


def test_validate_missing_file_exits_2(
    tmp_path: Path, issue_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.toml"
    assert main(["prompts", "validate", str(issue_file), str(missing)]) == 2
    assert capsys.readouterr().err == f"{missing}: (file): no such file\n"


def test_validate_accepts_a_directory(issue_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "validate", str(issue_file.parent)]) == 0
    assert capsys.readouterr().out == "ok: 1 files\n"


def test_validate_needs_no_settings(
    issue_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PROMPTLAB_CONFIG", str(tmp_path / "does-not-exist.toml"))
    assert main(["prompts", "validate", str(issue_file)]) == 0
    assert capsys.readouterr().out == "ok: 1 files\n"


def test_console_script_validates_the_shipped_prompts() -> None:
    script = Path(sys.executable).parent / "promptlab"
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "config" / "prompts").glob("*.toml"))
    result = subprocess.run(
        [str(script), "prompts", "validate", *files], cwd=REPO, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, f"ok: {len(files)} files\n", "")


def test_validate_reports_an_optional_variable_that_cannot_be_left_out(
    write_toml: WriteToml, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_toml(
        "count.toml",
        'id = "count"\n[[variables]]\nname = "n"\ntype = "integer"\n'
        '[[variants]]\nname = "v"\nmodel = "openai/x"\n'
        'template = "Count{% if n %} to {{ n }}{% endif %}, then to {{ n + 1 }}."\n',
    )
    assert main(["prompts", "validate", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: variants[0].template: line 1: 'n' is optional without a default, and "
        "arithmetic (+) on it fails for every call that leaves it out: guard it "
        "({% if n %}), give it a default or make it required"
    ]
