"""Datasets: named, frozen sets of test cases, most of them drawn from production traffic.

A dataset is two files in a datasets directory (default ``.promptlab/datasets``, like an
experiment's results under ``.promptlab/experiments``):

* ``NAME.jsonl``: the cases, one JSON object per line in the lab's case shape
  (``{"id", "inputs", "expected", "min_quality"}``), so an experiment reads it with
  ``dataset = "NAME"`` or as a ``cases_file``, and ``promptlab dataset export`` prints it;
* ``NAME.json``: what it is (:class:`DatasetInfo`): the prompt, when it was made, from
  which filters, how many cases.

Files, not the learner's database: a dataset is a snapshot an experiment must be able to
rerun against, so it must not change when the table it came from is capped, expired or
rebuilt by ``promptlab replay``; and the lab, which reads it, never imports the learner.
Building one from traffic is the learner's query layer (``learner.datasets``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from promptlab.prompts.demos import Demo

DEFAULT_DATASETS_DIR = Path(".promptlab") / "datasets"
"""Where datasets live unless a command or an experiment names another directory."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
"""A dataset name: a file stem that cannot leave its directory."""


class DatasetError(Exception):
    """A dataset that cannot be written or read (bad name, missing, malformed)."""


class DatasetInfo(BaseModel):
    """What a dataset is: ``NAME.json`` next to its cases."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    prompt_id: str
    created_at: datetime
    """When it was made (wall clock: a file's date, not an event)."""
    cases: int = Field(ge=0)
    with_expected: int = Field(default=0, ge=0)
    """Cases whose ``expected`` is a good answer (the others are judge-only)."""
    filters: dict[str, Any] = Field(default_factory=dict)
    """How it was drawn (``learner.datasets.DatasetQuery`` as JSON)."""


def check_name(name: str) -> str:
    """``name`` when it is a valid dataset name, else :class:`DatasetError`."""
    if not NAME.match(name):
        raise DatasetError(
            f"{name!r} is not a dataset name: letters, digits, '_', '.', '-' (at most 100), "
            "starting with a letter or digit"
        )
    return name


def _paths(directory: Path, name: str) -> tuple[Path, Path]:
    check_name(name)
    return directory / f"{name}.jsonl", directory / f"{name}.json"


def write_dataset(
    directory: str | os.PathLike[str],
    info: DatasetInfo,
    cases: Sequence[Mapping[str, Any]],
    *,
    replace: bool = False,
) -> Path:
    """Write ``cases`` (JSON objects in the case shape) and ``info`` (files replaced
    atomically); returns the cases' path. An existing dataset of the same name is an
    error unless ``replace``."""
    folder = Path(directory)
    cases_path, info_path = _paths(folder, info.name)
    if cases_path.exists() and not replace:
        raise DatasetError(f"dataset {info.name!r} exists in {folder} (replace it explicitly)")
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(cases_path, _jsonl(cases))
    _atomic_write(info_path, info.model_dump_json(indent=2) + "\n")
    return cases_path


def _atomic_write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def dataset_info(directory: str | os.PathLike[str], name: str) -> DatasetInfo:
    """The description of dataset ``name`` (:class:`DatasetError` when missing)."""
    _, info_path = _paths(Path(directory), name)
    try:
        return DatasetInfo.model_validate_json(info_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"no dataset {name!r} in {directory}") from None
    except (OSError, ValidationError) as exc:
        raise DatasetError(f"dataset {name!r}: unreadable description: {exc}") from None


def read_dataset(directory: str | os.PathLike[str], name: str) -> list[dict[str, Any]]:
    """The cases of dataset ``name`` as JSON objects, in order (the lab validates them
    as cases); :class:`DatasetError` when it is missing or a line is not an object."""
    cases_path, _ = _paths(Path(directory), name)
    try:
        lines = cases_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"no dataset {name!r} in {directory}") from None
    except OSError as exc:
        raise DatasetError(f"dataset {name!r}: cannot read: {exc}") from None
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"dataset {name!r}, line {number}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise DatasetError(f"dataset {name!r}, line {number}: not a JSON object")
        rows.append(row)
    return rows


def dataset_demos(name: str, rows: Iterable[Mapping[str, Any]]) -> list[Demo]:
    """The demonstrations dataset ``name`` gives a variant with ``demos = { pool = NAME }``:
    its cases that have an expected answer (and object inputs), in order, each with the id
    ``NAME:<case id>`` and reward 1.

    The one rule for both sides: the learner publishes these for every sidecar to serve
    (:func:`learner.demo_pools.dataset_snapshot`), and the lab uses them offline, so an
    experiment measures the demonstrations live traffic gets."""
    return [
        Demo.build(dict(row.get("inputs") or {}), str(row["expected"]),
                   id=f"{name}:{row.get('id', i)}")
        for i, row in enumerate(rows)
        if row.get("expected") and isinstance(row.get("inputs") or {}, dict)
    ]  # fmt: skip


def export_lines(directory: str | os.PathLike[str], name: str) -> str:
    """Dataset ``name`` as JSONL text, one case per line (what ``dataset export`` prints)."""
    return _jsonl(read_dataset(directory, name))


def _jsonl(rows: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)


def list_datasets(directory: str | os.PathLike[str]) -> list[DatasetInfo]:
    """Every dataset in ``directory`` with a readable description, by name."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    found: list[DatasetInfo] = []
    for path in sorted(folder.glob("*.json")):
        if not NAME.match(path.stem) or not path.with_suffix(".jsonl").exists():
            continue
        try:
            found.append(dataset_info(folder, path.stem))
        except DatasetError:
            continue
    return found
