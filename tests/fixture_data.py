"""The lerobot-written fixture datasets under tests/data, and what lerobot returned for them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent / "data"
FIXTURES = ("video_basic", "image_basic", "multi_chunk")


def fixture_path(name: str) -> Path:
    return DATA / name


def copy_fixture(name: str, dst: Path) -> Path:
    """A writable copy of fixture ``name`` at ``dst``."""
    shutil.copytree(DATA / name, dst)
    return dst


def expected(name: str, delta: bool = False) -> tuple[dict[str, Any], np.lib.npyio.NpzFile]:
    """``(__meta_json__, npz)`` of what lerobot returned for fixture ``name``."""
    npz = np.load(DATA / f"{name}{'.delta' if delta else ''}.expected.npz")
    return json.loads(str(npz["__meta_json__"])), npz
