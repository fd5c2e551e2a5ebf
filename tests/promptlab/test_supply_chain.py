"""The installed environment is the one we meant: no compromised litellm, no stray ``.pth``.

litellm 1.82.7 and 1.82.8 were compromised releases whose payload ran from a ``.pth``
file at every interpreter start. ``pyproject.toml`` keeps them out with a version floor;
this test makes ``make test`` (what CI runs) fail if one is installed anyway, or if any
``.pth`` file appears in the virtualenv that is not on the allow-list below, owned by
the distribution that is known to install it.
"""

from __future__ import annotations

import fnmatch
import site
import sys
from importlib import metadata
from pathlib import Path

import pytest

COMPROMISED_LITELLM = frozenset({"1.82.7", "1.82.8"})

ALLOWED_PTH = {
    "__editable__.promptlab-*.pth": "promptlab",  # pip install -e .
    "a1_coverage.pth": "coverage",  # coverage of subprocesses (COVERAGE_PROCESS_START)
    "distutils-precedence.pth": "setuptools",
    "_virtualenv.pth": "virtualenv",  # when the venv was made by virtualenv
    "pytest-cov.pth": "pytest-cov",  # older pytest-cov releases
}
"""``.pth`` file name pattern -> the distribution that must own it (its RECORD lists it)."""


def _site_dirs() -> list[Path]:
    dirs = [Path(d) for d in site.getsitepackages()]
    if site.ENABLE_USER_SITE and sys.prefix == sys.base_prefix:
        dirs.append(Path(site.getusersitepackages()))
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def _owners() -> dict[Path, set[str]]:
    """``.pth`` file path -> distributions whose RECORD lists exactly that file."""
    owners: dict[Path, set[str]] = {}
    for dist in metadata.distributions():
        for file in dist.files or ():
            if file.name.endswith(".pth"):
                path = Path(str(dist.locate_file(file))).resolve()
                owners.setdefault(path, set()).add(dist.metadata["Name"].lower())
    return owners


def unexpected_pth_files() -> list[str]:
    """Every ``.pth`` file in the environment's site directories that is not allowed."""
    owners = _owners()
    problems = []
    for directory in _site_dirs():
        for path in sorted(directory.glob("*.pth")):
            owner = next(
                (
                    dist
                    for pattern, dist in ALLOWED_PTH.items()
                    if fnmatch.fnmatch(path.name, pattern)
                ),
                None,
            )
            if owner is None:
                problems.append(f"{path}: not on the allow-list")
            elif owner not in owners.get(path.resolve(), set()):
                found = ", ".join(sorted(owners.get(path.resolve(), ()))) or "no distribution"
                problems.append(f"{path}: expected to come from {owner}, recorded by {found}")
    return problems


def test_litellm_is_not_a_compromised_release() -> None:
    installed = metadata.version("litellm")
    assert installed not in COMPROMISED_LITELLM, (
        f"litellm {installed} is a compromised release: reinstall the environment"
    )


def test_no_unexpected_pth_file_in_the_environment() -> None:
    assert unexpected_pth_files() == []


def test_a_stray_pth_file_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "litellm_init.pth").write_text("import os\n")
    (tmp_path / "a1_coverage.pth").write_text("import sys\n")  # right name, wrong place
    monkeypatch.setattr(site, "getsitepackages", lambda: [str(tmp_path)])
    problems = unexpected_pth_files()
    assert any("litellm_init.pth: not on the allow-list" in p for p in problems)
    assert any("a1_coverage.pth: expected to come from coverage" in p for p in problems)
