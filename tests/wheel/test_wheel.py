"""The installed package is the product: build the wheel, install it into a fresh
virtualenv outside the checkout, and use it from a temporary directory as a new user would.

Run by ``make test-wheel`` (and so by CI), not by ``make test``: it builds a virtualenv
and installs every dependency into it, which takes about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.wheel


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # A clean environment: nothing points back into the checkout.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PROMPTLAB_", "PYTHON", "VIRTUAL_ENV", "COV_CORE"))
    }
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (
        f"{cmd} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built wheel, the fresh virtualenv's bin directory)."""
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        ROOT,
    )
    (wheel,) = dist.glob("promptlab-*.whl")
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], env_dir, 900)
    return wheel, bin_dir


def test_the_wheel_installs_one_top_level_name(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        names = archive.namelist()
    assert {t for t in tops if not t.endswith(".dist-info")} == {"promptlab"}
    for data in (
        "promptlab/config/promptlab.toml",
        "promptlab/config/evolution/mutator.toml",
        "promptlab/config/experiments/summarize.toml",
        "promptlab/config/prompts/summarize.toml",
        "promptlab/demo_prompts/support_reply.toml",
        "promptlab/tui/app.tcss",
    ):
        assert data in names


def test_the_installed_package_works_from_another_directory(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, bin_dir = installed
    promptlab = str(bin_dir / "promptlab")
    python = str(bin_dir / "python")

    out = _run(
        [
            python,
            "-c",
            "import promptlab, sys; from promptlab import Lab; print(promptlab.__file__)",
        ],
        tmp_path,
    )
    assert str(ROOT) not in out.stdout and "site-packages" in out.stdout

    _run([promptlab, "init"], tmp_path)
    assert (tmp_path / "config" / "experiments" / "summarize.toml").is_file()

    run = _run([promptlab, "experiment", "run", "config/experiments/summarize.toml"], tmp_path)
    assert "120/120 trials" in run.stdout

    evolve = _run(
        [promptlab, "evolve", "config/experiments/summarize.toml", "--generations", "2"], tmp_path
    )
    assert "calls" in evolve.stdout

    demo = _run(
        [promptlab, "demo", "--json", "--requests", "400", "--data-dir", str(tmp_path / "demo")],
        tmp_path,
    )
    summary = json.loads(demo.stdout)
    assert summary["requests"] == 400
