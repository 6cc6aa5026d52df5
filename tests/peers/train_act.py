#!/usr/bin/env python
"""Proof by training, in the lerobot 0.6.1 venv (robostore from PYTHONPATH): a tiny ACT policy
and its processors built from robostore.lerobot's metadata, trained on a robostore.lerobot
dataset through a DataLoader with 2 workers. Prints {"losses": [...], "steps": N} as JSON.

  PYTHONPATH=src:$PEER06_VENV-robostore-deps $PEER06_VENV/bin/python tests/peers/train_act.py \
      --root URL [--storage-options JSON] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from lerobot.configs.types import FeatureType  # noqa: E402
from lerobot.policies.act.configuration_act import ACTConfig  # noqa: E402
from lerobot.policies.act.modeling_act import ACTPolicy  # noqa: E402
from lerobot.policies.act.processor_act import make_act_pre_post_processors  # noqa: E402
from lerobot.utils.feature_utils import dataset_to_policy_features  # noqa: E402

from robostore.lerobot import LeRobotDataset, LeRobotDatasetMetadata  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--storage-options", default="{}")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    options = json.loads(args.storage_options)
    torch.manual_seed(0)
    meta = LeRobotDatasetMetadata("local/act", root=args.root, storage_options=options)
    chunk = 5
    cfg = ACTConfig(
        chunk_size=chunk,
        n_action_steps=chunk,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        use_vae=False,
        pretrained_backbone_weights=None,
        device="cpu",
        optimizer_lr=1e-3,
    )
    # lerobot's make_policy, without its factory module (which imports every policy, some needing opencv)
    features = dataset_to_policy_features(meta.features)
    cfg.output_features = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    cfg.input_features = {k: f for k, f in features.items() if k not in cfg.output_features}
    policy = ACTPolicy(cfg)
    preprocess, _ = make_act_pre_post_processors(cfg, dataset_stats=meta.stats)
    deltas = {"action": [i / meta.fps for i in range(chunk)]}
    ds = LeRobotDataset("local/act", root=args.root, delta_timestamps=deltas, storage_options=options)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=8, shuffle=True, num_workers=2, drop_last=True, generator=torch.Generator().manual_seed(0)
    )
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    policy.train()
    losses: list[float] = []
    while len(losses) < args.steps:
        for batch in loader:
            loss, _ = policy.forward(preprocess(batch))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
            if len(losses) == args.steps:
                break
    print(json.dumps({"losses": losses, "steps": len(losses)}))


if __name__ == "__main__":
    main()
