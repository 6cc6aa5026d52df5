"""Rebuild the variant datasets and lerobot's oracle dumps under tests/data/variants.

Not part of the test run (the tests need neither lerobot nor this script). Run it with the
project's venv after building the lerobot 0.4.4 peer venv (see tests/data/README.md):

    .venv/bin/python tests/make_variant_oracles.py --peer-python PEER_VENV/bin/python \\
        --dump PEER_HARNESS/dump_dataset.py [VARIANT ...]

For each variant it writes the dataset (video variants are re-encoded and shipped whole,
the others are made from their fixture by the generator the tests use), opens it with
lerobot's ``LeRobotDataset`` through ``dump_dataset.py`` and stores what lerobot returned
as ``<name>.expected.npz``. Camera frames are stored as the uint8 they came from (lerobot
returns ``uint8 / 255`` as float32; the script checks that this is exact) to keep the
files small; ``__meta_json__`` then has ``"frames_uint8": true``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from fixture_data import copy_fixture
from variants import VARIANTS, VARIANTS_DIR, VIDEO_ENCODINGS, Variant, reencode


def build(variant: Variant, scratch: Path) -> Path:
    if variant.make is not None:
        return variant.build(scratch / variant.name)
    dst = VARIANTS_DIR / variant.name
    shutil.rmtree(dst, ignore_errors=True)
    copy_fixture(variant.base, dst)
    reencode(dst, *VIDEO_ENCODINGS[variant.name])
    return dst


def dump(variant: Variant, root: Path, peer_python: str, script: str, scratch: Path) -> None:
    raw = scratch / f"{variant.name}.raw.npz"
    indices = ",".join(str(i) for i in variant.indices)
    subprocess.run([peer_python, script, "--root", str(root), "--indices", indices, "--out", str(raw)], check=True)
    npz = np.load(raw)
    meta = json.loads(str(npz["__meta_json__"]))
    if meta["errors"]:
        raise SystemExit(f"{variant.name}: lerobot failed on some indices: {meta['errors']}")
    arrays = {}
    for name in npz.files:
        value = npz[name]
        if name.startswith("item/") and name.split("/", 2)[2] in meta["camera_keys"]:
            as_uint8 = np.round(value * 255).astype(np.uint8)
            if not np.array_equal(as_uint8.astype(np.float32) / 255, value):
                raise SystemExit(f"{variant.name}: {name} is not uint8 / 255")
            value = as_uint8
        arrays[name] = value
    meta["frames_uint8"] = True
    arrays["__meta_json__"] = np.array(json.dumps(meta))
    np.savez_compressed(variant.oracle, **arrays)
    print(f"{variant.oracle}: {variant.oracle.stat().st_size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", required=True)
    parser.add_argument("--dump", required=True, help="the peer harness's dump_dataset.py")
    parser.add_argument("names", nargs="*", help="variants (default: all)")
    args = parser.parse_args()
    VARIANTS_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names or list(VARIANTS):
            variant = VARIANTS[name]
            root = build(variant, Path(tmp))
            if variant.indices and not variant.oracle_from_base:
                dump(variant, root, args.peer_python, args.dump, Path(tmp))


if __name__ == "__main__":
    main()
