#!/usr/bin/env bash
# Recreate the lerobot 0.6.1 peer-harness virtual environment, non-interactively and idempotently.
#
#   bash setup.sh            # exact versions from requirements.txt (default); no-op if already in place
#   bash setup.sh resolve    # re-derive: torch 2.13.0, lerobot 0.6.1 --no-deps + the minimal dependency set
#   bash setup.sh --force    # rebuild even if the venv already matches requirements.txt
#
# Environment overrides: PEER06_VENV (default: ~/.cache/robostore-peers/lerobot061), PEER06_PYTHON (default: a Python 3.12),
#   PEER06_NO_APT=1 (never apt-get the FFmpeg libraries; torchcodec then cannot load and lerobot uses pyav).
#
# What it does and why (details in README.md):
#   1. Python 3.12 is required for real: lerobot 0.6.1 uses PEP 695 syntax (`type X = ...`, `class C[T]`)
#      (lerobot/datasets/aggregate.py, streaming_dataset.py, utils/io_utils.py, ...), a SyntaxError on 3.11.
#   2. torch==2.13.0. For cp312 the only wheel pip can reach is PyPI's CUDA 13.0 build; it cannot even be
#      imported without its nvidia-* runtime wheels (libcudnn.so.9 etc. are DT_NEEDED of libtorch_cuda.so),
#      so they are installed too (~2.7 GB; several come from the local wheel mirror). It runs on the CPU.
#      triton (only for torch.compile) is left out. The local torch-2.13.0+cpu wheel is cp311-only.
#   3. lerobot==0.6.1, torchvision==0.28.0 (pairs with torch 2.13; lerobot declares <0.27 but only uses
#      torchvision.transforms) and torchcodec==0.11.1 (newest that lerobot allows, <0.12) with --no-deps.
#   4. Only the runtime deps that lerobot.datasets imports, inside lerobot's declared ranges:
#      datasets 4.8, huggingface-hub 1.x, av 15.x, pandas 2.x, pyarrow, numpy <2.3, pillow <13, packaging <26,
#      jsonlines, draccus, termcolor, safetensors, einops, gymnasium (imported via lerobot.configs/envs).
#   5. torchcodec needs FFmpeg shared libraries (majors 4..8). If none are on the system and we are root,
#      Debian's FFmpeg 5.1 runtime libraries are apt-installed (libavutil57 libavcodec59 libavformat59
#      libavdevice59 libavfilter8 libswscale6 libswresample4). With them, lerobot 0.6.1's default video backend
#      (torchcodec) works and StreamingLeRobotDataset can read video datasets.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${PEER06_VENV:-$HOME/.cache/robostore-peers/lerobot061}"
REQ="$HERE/requirements.txt"
MODE=frozen
FORCE=0
for a in "$@"; do
  case "$a" in
    frozen|resolve) MODE="$a" ;;
    --force) FORCE=1 ;;
    *) echo "usage: setup.sh [frozen|resolve] [--force]"; exit 2 ;;
  esac
done
PY="${PEER06_PYTHON:-}"
if [[ -z "$PY" ]]; then
  P312="$(pyenv root 2>/dev/null)/versions/3.12.1/bin/python3.12"
  if [[ -x $P312 ]]; then PY=$P312;
  elif command -v python3.12 >/dev/null 2>&1; then PY="$(command -v python3.12)";
  else PY=python3; fi
fi
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 12), sys.version' \
  || { echo "need Python >= 3.12 (set PEER06_PYTHON)"; exit 1; }

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
start=$(date +%s)

# ---- FFmpeg shared libraries for torchcodec (system level, optional) ----
have_ffmpeg() { ldconfig -p 2>/dev/null | grep -qE 'libavutil\.so\.(56|57|58|59|60) '; }
if have_ffmpeg; then
  echo ">> FFmpeg shared libraries present ($(ldconfig -p | grep -oE 'libavutil\.so\.[0-9]+' | head -1))"
elif [[ "${PEER06_NO_APT:-0}" != 1 && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo ">> apt-installing Debian's FFmpeg runtime libraries (for torchcodec)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4 >/dev/null
else
  echo ">> WARNING: no FFmpeg shared libraries; torchcodec will not load and lerobot falls back to pyav"
fi

# ---- fast path: venv already matches the frozen set ----
frozen_list() { grep -vE '^\s*(#|$)' "$REQ" | tr 'A-Z_' 'a-z-' | sed 's/+[a-z0-9.]*$//' | sort; }
if [[ "$MODE" == frozen && "$FORCE" == 0 && -x "$VENV/bin/python" ]]; then
  have="$("$VENV/bin/python" -m pip freeze 2>/dev/null | tr 'A-Z_' 'a-z-' | sed 's/+[a-z0-9.]*$//' | sort || true)"
  if [[ "$have" == "$(frozen_list)" ]] && "$VENV/bin/python" -c 'import warnings; warnings.filterwarnings("ignore"); from lerobot.datasets.lerobot_dataset import LeRobotDataset' 2>/dev/null; then
    echo ">> $VENV already matches requirements.txt (use --force to rebuild)"
    FAST=1
  fi
fi

if [[ -z "${FAST:-}" ]]; then
  echo ">> creating $VENV with $PY"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  PIP=("$VENV/bin/python" -m pip)
  if [[ "$MODE" == "frozen" ]]; then
    echo ">> exact versions from requirements.txt (--no-deps), torch 2.13.0 + nvidia runtime wheels included"
    "${PIP[@]}" install -q --no-deps -r "$REQ"
  else
    echo ">> torch 2.13.0 and its nvidia runtime wheels (no triton)"
    "${PIP[@]}" install -q "torch==2.13.0"
    "${PIP[@]}" uninstall -q -y triton || true
    echo ">> lerobot 0.6.1 + torchvision 0.28.0 + torchcodec 0.11.1 without their dependencies"
    "${PIP[@]}" install -q --no-deps "lerobot==0.6.1" "torchvision==0.28.0" "torchcodec==0.11.1"
    echo ">> runtime deps of lerobot.datasets (torch pinned so the resolver cannot swap it)"
    "${PIP[@]}" install -q "torch==2.13.0" \
      "datasets>=4.8.0,<5.0.0" "huggingface-hub>=1.6.0,<2.0.0" "av>=15.0.0,<16.0.0" "jsonlines>=4.0.0,<5.0.0" \
      "packaging>=24.2,<26.0" "numpy>=2.0.0,<2.3.0" "pandas>=2.0.0,<3.0.0" "pyarrow>=21.0.0,<30.0.0" \
      "Pillow>=10.0.0,<13.0.0" "setuptools>=71.0.0,<82.0.0" "draccus>=0.11.6,<0.12.0" "termcolor>=2.4.0,<4.0.0" \
      "safetensors>=0.4.3,<1.0.0" "einops>=0.8.0,<0.9.0" "gymnasium>=1.1.1,<2.0.0"
    "${PIP[@]}" uninstall -q -y triton 2>/dev/null || true
  fi
fi

echo ">> sanity checks"
"$VENV/bin/python" - <<'PYEOF'
import importlib.metadata as md, warnings, logging
warnings.filterwarnings("ignore")
import torch, torchvision, av, datasets, huggingface_hub, numpy, pandas, pyarrow
assert torch.__version__.startswith("2.13.0"), torch.__version__
from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata  # noqa: F401
from lerobot.datasets.streaming_dataset import StreamingLeRobotDataset  # noqa: F401
import lerobot.datasets  # the package __init__ imports dataset_tools, aggregate, language, ...
from lerobot.utils.import_utils import get_safe_default_video_backend
logging.disable(logging.WARNING)
backend = get_safe_default_video_backend()
try:
    import torchcodec
    from torchcodec.decoders import VideoDecoder  # noqa: F401
    tc = f"{torchcodec.__version__} loads (FFmpeg {getattr(torchcodec, 'ffmpeg_major_version', '?')})"
except Exception as e:  # noqa: BLE001
    tc = f"does not load: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
import lerobot
print({"lerobot": lerobot.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
       "torchcodec": tc, "default_video_backend": backend, "av": av.__version__,
       "datasets": datasets.__version__, "huggingface_hub": huggingface_hub.__version__,
       "numpy": numpy.__version__, "pandas": pandas.__version__, "pyarrow": pyarrow.__version__})
PYEOF
# robostore's own runtime dependencies that this venv lacks, beside it (not in it: the venv stays
# exactly requirements.txt), for tests that import robostore here (PYTHONPATH=src:$VENV-robostore-deps).
# Versions from the repository's constraints.txt.
OVERLAY="$VENV-robostore-deps"
if [[ ! -f "$OVERLAY/.ok" ]]; then
  mapfile -t PINS < <(grep -E '^(pydantic|pydantic_core|annotated-types|typing-inspection)==' "$HERE/../../../constraints.txt")
  rm -rf "$OVERLAY"
  # + opencv, which lerobot declares and its policy factory imports (the frozen venv leaves it out)
  "$VENV/bin/python" -m pip install -q --no-deps --target "$OVERLAY" "${PINS[@]}" "opencv-python-headless==4.13.0.92"
  touch "$OVERLAY/.ok"
fi
du -sh "$VENV" | awk '{print ">> venv size: " $1}'
echo ">> done in $(( $(date +%s) - start )) s"
