"""Running the real lerobot (0.4.4 and 0.6.1) on datasets, from tests.

The venvs are built by ``tests/peers/lerobot044/setup.sh`` and ``tests/peers/lerobot061/setup.sh``
(``.ci/run`` runs both before the ``-m lerobot_peers`` step); ``PEER_VENV`` / ``PEER06_VENV``
point elsewhere, as for the setup scripts.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
VENVS = {
    "0.4.4": ("PEER_VENV", Path.home() / ".cache/robostore-peers/lerobot044"),
    "0.6.1": ("PEER06_VENV", Path.home() / ".cache/robostore-peers/lerobot061"),
}


def peer_python(version: str) -> Path:
    """The Python of the lerobot ``version`` venv; fails the test when it is not built."""
    env, default = VENVS[version]
    python = Path(os.environ.get(env) or default) / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"lerobot {version} venv missing at {python.parent.parent}: run tests/peers/*/setup.sh (or set {env})"
        )
    return python


def run_peer(version: str, script: str, *args: str, timeout: float = 600, with_robostore: bool = False) -> str:
    """Run ``tests/peers/<script>`` with lerobot ``version``; its stdout (stderr shown on failure).

    ``with_robostore``: robostore importable there too (``src/`` and the dependencies
    lerobot's venv lacks, which lerobot061/setup.sh installs beside the venv)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    if with_robostore:
        venv = peer_python(version).parent.parent
        env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent.parent / "src"), f"{venv}-robostore-deps"])
    proc = subprocess.run(
        [str(peer_python(version)), str(HERE / script), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode:
        raise AssertionError(
            f"lerobot {version} {script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def dump(version: str, root: Path, out: Path, *args: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What lerobot ``version``'s LeRobotDataset returns for ``root``: (header, arrays),
    as ``dump_dataset.py`` writes them (see tests/data/README.md)."""
    run_peer(version, "dump_dataset.py", "--root", str(root), "--out", str(out), "--strict", *args)
    with np.load(out, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays.pop("__meta_json__")))
    return header, arrays
