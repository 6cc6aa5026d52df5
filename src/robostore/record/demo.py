"""A synthetic robot for ``robostore demo`` and the recording benchmark."""

from __future__ import annotations

from typing import Any

import numpy as np

TASKS = ("pick up the red cube", "place the cube in the bowl", "open the drawer")


def demo_features(height: int, width: int, cameras: int = 2, dof: int = 6) -> dict[str, dict[str, Any]]:
    """``cameras`` video cameras, a ``dof``-d state and action, as lerobot declares them."""
    joints = [f"joint_{i}" for i in range(dof)]
    features: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": (dof,), "names": joints},
        "action": {"dtype": "float32", "shape": (dof,), "names": joints},
    }
    for cam in range(cameras):
        features[f"observation.images.cam{cam}"] = {
            "dtype": "video",
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        }
    return features


class SyntheticRobot:
    """Smooth joint trajectories and camera frames with a moving pattern (cheap to make)."""

    def __init__(self, height: int, width: int, cameras: int = 2, dof: int = 6, seed: int = 0) -> None:
        self.height, self.width, self.cameras, self.dof = height, width, cameras, dof
        rng = np.random.default_rng(seed)
        self.phase = rng.uniform(0, 2 * np.pi, dof).astype(np.float32)
        yy, xx = np.mgrid[0:height, 0:width]
        self._base = ((xx[..., None] * 255 // max(1, width - 1)) + np.array([0, 85, 170])).astype(np.int32)
        self._yy = yy

    def frame(self, episode: int, index: int, fps: int) -> dict[str, Any]:
        """Frame ``index`` of ``episode``: state, action, one image per camera, a task."""
        t = np.float32(index / fps)
        state = np.sin(self.phase + t + episode).astype(np.float32)
        out: dict[str, Any] = {
            "observation.state": state,
            "action": np.sin(self.phase + t + episode + np.float32(1 / fps)).astype(np.float32),
            "task": TASKS[episode % len(TASKS)],
        }
        for cam in range(self.cameras):
            shift = index * 4 + cam * 40 + episode * 17
            img = (self._base + shift) % 256
            band = (self._yy + index * 3 + cam * 20) % 64 < 8  # a bar moving down the picture
            img[band] = 255 - img[band]
            out[f"observation.images.cam{cam}"] = img.astype(np.uint8)
        return out
