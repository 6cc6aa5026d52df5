"""The hostile-input corpus (tests/hostile_cases.py) through every entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixture_data import copy_fixture
from hostile_cases import CASES, Case

from robostore.errors import RobostoreError
from robostore.meta import DatasetMeta
from robostore.validate import validate

pytestmark = pytest.mark.timeout(60)

META_CASES = [c for c in CASES if c.level == "meta"]


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def broken(request, tmp_path) -> tuple[Case, Path]:
    case: Case = request.param
    root = copy_fixture(case.fixture, tmp_path / "dataset")
    case.mutate(root)
    return case, root


def test_corpus_is_big_enough():
    assert len(CASES) >= 50


@pytest.mark.parametrize("broken", [c for c in CASES if c.validate], ids=lambda c: c.name, indirect=True)
def test_validate_reports_the_file(broken, tmp_path):
    case, root = broken
    before = snapshot(tmp_path)
    report = validate(str(root))
    assert not report.ok
    hits = [p for p in report.problems if p.path == case.path and case.fragment in p.message]
    assert hits, f"{case.name}: wanted {case.fragment!r} at {case.path}, got {report.problems}"
    assert snapshot(tmp_path) == before, "validate must not write anything"


@pytest.mark.parametrize("broken", META_CASES, ids=lambda c: c.name, indirect=True)
def test_opening_raises_the_typed_error(broken):
    case, root = broken
    with pytest.raises(RobostoreError) as err:
        DatasetMeta.open(str(root))
    assert isinstance(err.value, case.error), f"{case.name}: {type(err.value).__name__}: {err.value}"
    assert case.fragment in str(err.value)
    assert case.path in str(err.value), f"{case.name}: the message does not name {case.path}: {err.value}"
