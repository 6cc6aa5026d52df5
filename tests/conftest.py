"""Shared fixtures. The backend fixtures live in ``backends/pytest_plugin.py``.

``backends/`` (the local S3/GCS servers and the Hub emulator) sits at the top of the
repository and is not an installed package, so the repository root goes on sys.path.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import pytest  # noqa: E402 - after the sys.path entry that makes `backends` importable

# Imported here before pytest_plugins loads it: its asserts are rewritten all the same.
pytest.register_assert_rewrite("backends.pytest_plugin")
from backends.pytest_plugin import upload_folder  # noqa: E402 - as above

# The backend fixtures (s3_server, backend_url, store_url, ...).
pytest_plugins = ["backends.pytest_plugin"]


@pytest.fixture
def video_basic_url(store_url: tuple[str, dict]) -> tuple[str, dict]:
    """tests/data/video_basic uploaded to a fresh root on each backend: ``(url, storage_options)``."""
    url, options = store_url
    upload_folder(DATA / "video_basic", url, options)
    return url, options


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run only when asked for (``-m slow``), and so do those marked
    ``lerobot_peers`` (``-m lerobot_peers``: they need the lerobot venvs of tests/peers/)."""
    selected = config.getoption("-m") or ""
    for marker, why in (
        ("slow", "slow: run with -m slow"),
        ("lerobot_peers", "needs the lerobot peer venvs: run with -m lerobot_peers"),
    ):
        if marker in selected:
            continue
        skip = pytest.mark.skip(reason=why)
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
