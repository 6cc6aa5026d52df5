#!/usr/bin/env bash
# Recreate the lerobot peer-harness virtual environment from scratch, non-interactively.
#
#   bash setup.sh            # exact versions from requirements.txt (default, ~1 min); no-op when the venv is in place
#   bash setup.sh resolve    # re-derive: lerobot 0.4.4 --no-deps + the minimal dependency set
#
# Environment overrides: PEER_VENV (default: ~/.cache/lerobot-peer/venv), PEER_PYTHON (default: python3.11).
#
# What it does and why:
#   1. torch==2.13.0 CPU build. pip takes the CPU wheel that pip is configured to find on these machines.
#      lerobot 0.4.4 asks for torch<2.11; the only CPU torch available offline is 2.13.0, and any
#      resolver run that is allowed to pick torch itself downloads a multi-GB CUDA build. So torch is
#      installed first and every later pip call either repeats torch==2.13.0 or uses --no-deps.
#   2. lerobot==0.4.4 with --no-deps (its full dependency list is robots/training/UI stuff).
#   3. torchvision==0.25.0 from PyPI with --no-deps (newest allowed by lerobot, and the last line that
#      still ships torchvision.io.VideoReader, which lerobot's video_backend="pyav" path uses).
#      Its C++ ops (_C.so) are built for torch 2.10 and cannot load into torch 2.13, and the unguarded
#      `@torch.library.register_fake("torchvision::nms")` in torchvision/_meta_registrations.py then
#      makes `import torchvision` fail with "operator torchvision::nms does not exist".
#      We patch that single decorator to apply only when the ops loaded. Nothing in lerobot is changed;
#      the code lerobot uses (transforms.ToTensor, io.VideoReader with the pyav backend) is pure Python.
#   4. Only the runtime deps that lerobot.datasets.{lerobot_dataset,streaming_dataset} import:
#      datasets 4.x, huggingface-hub 0.35.x, av 15.x, accelerate (imported by lerobot.utils.utils),
#      pandas, pyarrow, pillow, jsonlines, packaging<26, numpy<2.4, setuptools<81.
#   torchcodec is NOT installed: 0.10.0 is built against torch 2.10 and fails to load into torch 2.13
#   (undefined symbol c10::MessageLogger...). Without it lerobot falls back to "pyav" for
#   LeRobotDataset, but StreamingLeRobotDataset hard-codes torchcodec for video keys.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${PEER_VENV:-$HOME/.cache/robostore-peers/lerobot044}"
MODE="${1:-frozen}"
PY="${PEER_PYTHON:-}"
if [[ -z "$PY" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then PY="$(command -v python3.11)";
  elif [[ -x /root/.pyenv/versions/3.11.7/bin/python3.11 ]]; then PY=/root/.pyenv/versions/3.11.7/bin/python3.11;
  else PY=python3; fi
fi
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "need Python 3.11 (set PEER_PYTHON)"; exit 1; }

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
FIND_LINKS=()

if [[ "$MODE" == frozen && -f "$VENV/.robostore-peer-ok" ]] \
  && "$VENV/bin/python" -c 'import warnings; warnings.filterwarnings("ignore"); from lerobot.datasets.lerobot_dataset import LeRobotDataset' 2>/dev/null; then
  echo ">> $VENV is in place (delete it to rebuild)"
  exit 0
fi

start=$(date +%s)
echo ">> creating $VENV with $PY"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)

echo ">> torch 2.13.0 (CPU wheel)"
"${PIP[@]}" install "${FIND_LINKS[@]}" "torch==2.13.0"

if [[ "$MODE" == "frozen" ]]; then
  echo ">> exact versions from requirements.txt (--no-deps)"
  "${PIP[@]}" install "${FIND_LINKS[@]}" --no-deps -r "$HERE/requirements.txt"
elif [[ "$MODE" == "resolve" ]]; then
  echo ">> lerobot 0.4.4 + torchvision 0.25.0 without their dependencies"
  "${PIP[@]}" install --no-deps "lerobot==0.4.4" "torchvision==0.25.0"
  echo ">> runtime deps of lerobot.datasets (torch pinned so the resolver cannot swap it)"
  "${PIP[@]}" install "${FIND_LINKS[@]}" "torch==2.13.0" \
    "datasets>=4.0.0,<5.0.0" "huggingface-hub>=0.34.2,<0.36.0" "av>=15.0.0,<16.0.0" \
    "accelerate>=1.10.0,<2.0.0" "jsonlines>=4.0.0,<5.0.0" "packaging>=24.2,<26.0" \
    "numpy<2.4" "setuptools>=71.0.0,<81.0.0" pandas pyarrow pillow
else
  echo "usage: setup.sh [frozen|resolve]"; exit 2
fi

echo ">> patching torchvision/_meta_registrations.py (guard the torchvision::nms fake registration)"
"$VENV/bin/python" - <<'PYEOF'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("torchvision")
p = pathlib.Path(spec.submodule_search_locations[0]) / "_meta_registrations.py"
src = p.read_text()
old = '@torch.library.register_fake("torchvision::nms")\n'
new = ('@(torch.library.register_fake("torchvision::nms") if torchvision.extension._has_ops() else (lambda f: f))'
       '  # peer-harness patch: _C ops unavailable with torch 2.13 CPU\n')
if new in src:
    print("already patched:", p)
elif src.count(old) == 1:
    p.write_text(src.replace(old, new))
    print("patched:", p)
else:
    sys.exit(f"unexpected content in {p}; patch not applied")
PYEOF

echo ">> sanity checks"
"$VENV/bin/python" - <<'PYEOF'
import importlib.metadata as md, importlib.util, warnings
warnings.filterwarnings("ignore")
import torch, torchvision, av, datasets, huggingface_hub, numpy, pandas, pyarrow
assert torch.__version__.endswith("+cpu"), torch.__version__
cuda = [d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith(("nvidia-", "triton"))]
assert not cuda, f"CUDA packages crept in: {cuda}"
assert importlib.util.find_spec("torchcodec") is None
from torchvision.io import VideoReader  # noqa: F401  (used by lerobot's pyav backend)
from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata  # noqa: F401
from lerobot.datasets.streaming_dataset import StreamingLeRobotDataset  # noqa: F401
import lerobot
print({"lerobot": lerobot.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
       "av": av.__version__, "datasets": datasets.__version__, "huggingface_hub": huggingface_hub.__version__,
       "numpy": numpy.__version__, "pandas": pandas.__version__, "pyarrow": pyarrow.__version__})
PYEOF
touch "$VENV/.robostore-peer-ok"
du -sh "$VENV" | awk '{print ">> venv size: " $1}'
echo ">> done in $(( $(date +%s) - start )) s"
