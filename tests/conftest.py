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

from backends.pytest_plugin import (  # noqa: E402,F401  (fixtures are found by name)
    BACKENDS,
    REMOTE,
    backend_params,
    backend_url,
    gcs_server,
    hf_server,
    make_store,
    new_root,
    s3_server,
    store_url,
    upload_folder,
)
import pytest  # noqa: E402


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
    for marker, why in (("slow", "slow: run with -m slow"), ("lerobot_peers", "needs the lerobot peer venvs: run with -m lerobot_peers")):
        if marker in selected:
            continue
        skip = pytest.mark.skip(reason=why)
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
