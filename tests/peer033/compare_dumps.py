#!/usr/bin/env python
"""Compare two oracle dumps (npz: ``item/<index>/<key>``) key by key.

Used to check that lerobot 0.4.4 / 0.6.1 read a v3.0 dataset converted by
``robostore convert`` with the values lerobot 0.3.3 read from the v2.1 source:

    robostore convert tests/data/v21_video /tmp/out --data-mb 0.004 --video-mb 0.015
    <0.4.4 or 0.6.1 peer python> <its dump_dataset.py> --root /tmp/out --indices 0,1,15,29,30,49,50,70,89 --out /tmp/new.npz
    python tests/peer033/compare_dumps.py /tmp/new.npz tests/data/v21_video.expected.npz

Every key of the reference must be in the other dump with the same dtype and shape;
tabular values and strings must be equal, camera frames within ``--atol`` (default 0).
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dump")
    p.add_argument("reference")
    p.add_argument("--atol", type=float, default=0.0)
    args = p.parse_args()
    got, want = np.load(args.dump), np.load(args.reference)
    worst = 0.0
    for key in (k for k in want.files if k.startswith("item/")):
        assert key in got.files, f"{key} missing"
        a, b = got[key], want[key]
        if b.dtype.kind == "U":
            assert str(a) == str(b), key
            continue
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (key, a.dtype, a.shape, b.dtype, b.shape)
        diff = float(np.abs(a.astype(float) - b.astype(float)).max()) if a.size else 0.0
        if "images" in key:
            worst = max(worst, diff)
            assert diff <= args.atol, (key, diff)
        else:
            assert diff == 0, (key, diff)
    print(f"equal: {sum(k.startswith('item/') for k in want.files)} values; largest frame difference {worst}")


if __name__ == "__main__":
    main()
