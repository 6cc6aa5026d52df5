#!/usr/bin/env bash
# Build a lerobot 0.3.3 virtual environment (the last lerobot release that writes LeRobot v2.1),
# used only to (re)make the v2.1 fixtures and oracle dumps in tests/data/v21/. The test suite never
# needs it.
#
#   bash tests/peer033/setup.sh        # venv at ~/.cache/lerobot033-venv (override: PEER033_VENV)
#
# Same approach as the 0.4.4 peer harness:
#   1. torch==2.13.0 (CPU wheel) first; every later install repeats torch==2.13.0 or uses --no-deps,
#      so pip never swaps in a CUDA build (lerobot 0.3.3 declares torch<2.8).
#   2. lerobot==0.3.3 and torchvision==0.25.0 with --no-deps (lerobot's own list is robots/training/UI).
#      torchvision's compiled ops cannot load into torch 2.13; one decorator in
#      torchvision/_meta_registrations.py is guarded so `import torchvision` works (lerobot only uses
#      the pure-Python transforms.ToTensor and io.VideoReader with the pyav backend).
#   3. Only what lerobot.datasets.lerobot_dataset imports: datasets 3.6 (0.3.3 requires <=3.6.0),
#      huggingface-hub, av, jsonlines, packaging, numpy<2.4, pandas, pyarrow, pillow.
#   torchcodec is not installed: lerobot 0.3.3 then decodes with "pyav".
set -euo pipefail
VENV="${PEER033_VENV:-$HOME/.cache/lerobot033-venv}"
PY="${PEER_PYTHON:-$(command -v python3.11)}"
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
rm -rf "$VENV"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install "torch==2.13.0"
"${PIP[@]}" install --no-deps "lerobot==0.3.3" "torchvision==0.25.0"
"${PIP[@]}" install "torch==2.13.0" "datasets==3.6.0" "huggingface-hub>=0.34.2,<0.36.0" \
  "av>=15.0.0,<16.0.0" "jsonlines>=4.0.0,<5.0.0" "packaging>=24.2,<26.0" "numpy<2.4" \
  pandas pyarrow pillow
"$VENV/bin/python" - <<'PYEOF'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("torchvision")
p = pathlib.Path(spec.submodule_search_locations[0]) / "_meta_registrations.py"
src = p.read_text()
old = '@torch.library.register_fake("torchvision::nms")\n'
new = ('@(torch.library.register_fake("torchvision::nms") if torchvision.extension._has_ops() else (lambda f: f))'
       '  # peer patch: _C ops unavailable with torch 2.13 CPU\n')
if new not in src:
    if src.count(old) != 1:
        sys.exit(f"unexpected content in {p}")
    p.write_text(src.replace(old, new))
PYEOF
"$VENV/bin/python" - <<'PYEOF'
import warnings
warnings.filterwarnings("ignore")
import importlib.metadata as md
from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset  # noqa: F401
assert CODEBASE_VERSION == "v2.1", CODEBASE_VERSION
print({n: md.version(n) for n in ("lerobot", "torch", "torchvision", "datasets", "av", "numpy", "pyarrow")})
PYEOF
