"""Camera-like frames for the benchmarks' synthetic datasets.

Flat synthetic frames (gradients, checkerboards) compress to almost nothing and decode
~3x faster than real robot video, which makes every ceiling wrong. These frames have
what makes real footage cost: multi-scale texture (a table, a wall, clutter) under
uneven light, objects with their own texture moving smoothly, an arm sweeping
through, a camera that drifts a little (every block changes, as on a wrist or a
hand-held camera) and sensor noise. Measured with the issue's yardstick: PyAV decodes
these 480x640 AV1 files (crf 30, GOP 2) at a few hundred frames/s per thread, as it
decodes lerobot recordings of real scenes, not the ~1,500 of flat frames.
"""

from __future__ import annotations

import numpy as np


def _texture(rng: np.random.Generator, h: int, w: int, scales: tuple[int, ...] = (64, 16, 4)) -> np.ndarray:
    """Smooth random texture over several scales, float32 [H, W, 3] around 0."""
    out = np.zeros((h, w, 3), np.float32)
    for scale, weight in zip(scales, (60.0, 30.0, 14.0), strict=True):
        grid = rng.standard_normal((h // scale + 2, w // scale + 2, 3)).astype(np.float32)
        up = np.repeat(np.repeat(grid, scale, 0), scale, 1)
        # A box blur of one cell softens the blocks into blobs.
        k = max(1, scale // 2)
        up = (up + np.roll(up, k, 0) + np.roll(up, k, 1) + np.roll(np.roll(up, k, 0), k, 1)) / 4
        out += weight * up[:h, :w]
    return out


class Room:
    """What one camera sees of the workspace, episode after episode: textured wall and
    table under uneven light (with room for the camera's drift), and its sensor noise.

    Args:
        rng: randomness.
        h, w: frame size.
        drift: the camera moves (pixels per frame at most); 0 for a fixed camera.
    """

    def __init__(self, rng: np.random.Generator, h: int, w: int, drift: float = 0.6) -> None:
        self.h, self.w, self.drift = h, w, drift
        self.pad = min(int(np.ceil(drift * 600)) + 8, max(h, w) // 4)
        H, W = h + 2 * self.pad, w + 2 * self.pad  # noqa: N806 - the padded world's size, beside h and w
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        light = 0.75 + 0.35 * np.cos((xx / W - 0.3) * 2.2) * np.cos((yy / H - 0.6) * 1.7)
        base = rng.uniform(70, 170, 3).astype(np.float32)
        world = (base + _texture(rng, H, W)) * light[..., None]
        table_top = int(H * rng.uniform(0.45, 0.6))  # an edge: table vs wall
        world[table_top:] = world[table_top:] * 0.8 + 25
        self.world = np.clip(world, 0, 255).astype(np.int16)
        # Sensor noise, a new field each frame (drawn ahead: drawing per frame costs more than encoding).
        self.noise = rng.normal(0, 2.5, (5, h, w, 3)).round().astype(np.int16)


class Scene:
    """One episode in a :class:`Room`: call :meth:`frame` for frames 0, 1, ...

    Objects with their own texture move smoothly, an arm sweeps through, the camera
    drifts.
    """

    def __init__(self, room: Room, rng: np.random.Generator) -> None:
        self.room = room
        h, w = room.h, room.w
        self.h, self.w, self.pad, self.drift = h, w, room.pad, room.drift
        self.world, self.noise = room.world, room.noise
        self.phase = rng.uniform(0, 2 * np.pi, 2)
        self.objects = []
        for _ in range(3):
            size = (int(rng.uniform(0.08, 0.2) * h), int(rng.uniform(0.08, 0.2) * w))
            patch = rng.uniform(40, 220, 3).astype(np.float32) + _texture(rng, *size, scales=(8, 2))
            start = np.array([rng.uniform(0.2, 0.8) * h, rng.uniform(0.1, 0.9) * w])
            speed = rng.uniform(-1.2, 1.2, 2) * max(h, w) / 480
            self.objects.append((np.clip(patch, 0, 255).astype(np.int16), start, speed))
        self.arm_color = rng.integers(150, 230, 3).astype(np.int16)

    def frame(self, i: int) -> np.ndarray:
        """uint8 [H, W, 3] frame ``i``."""
        h, w, pad = self.h, self.w, self.pad
        dy = round(pad * 0.9 * np.sin(i * self.drift / pad + self.phase[0])) if self.drift else 0
        dx = round(pad * 0.9 * np.sin(i * self.drift / pad * 0.7 + self.phase[1])) if self.drift else 0
        img = self.world[pad + dy : pad + dy + h, pad + dx : pad + dx + w].copy()
        for patch, start, speed in self.objects:
            ph, pw = patch.shape[:2]
            y = int(start[0] + 0.3 * h * np.sin(i * speed[0] / 60)) - ph // 2
            x = int(start[1] + 0.3 * w * np.sin(i * speed[1] / 60)) - pw // 2
            y0, x0 = max(0, y), max(0, x)
            y1, x1 = min(h, y + ph), min(w, x + pw)
            if y1 > y0 and x1 > x0:
                img[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]
        # The arm: a thick bar from the bottom edge, sweeping.
        angle = 0.6 * np.sin(i / 45) - np.pi / 2
        cx, cy = w * 0.5, h * 1.05
        length, thick = 0.7 * h, max(3, w // 30)
        t = np.linspace(0, 1, 64)[:, None]
        points = np.hstack([cx + t * length * np.cos(angle), cy + t * length * np.sin(angle)]).astype(int)
        for x, y in points[::2]:
            img[max(0, y - thick) : max(0, y + thick), max(0, x - thick) : max(0, x + thick)] = self.arm_color
        noise = self.noise[i % len(self.noise)]
        img += np.roll(noise, (i // len(self.noise)) * 7, axis=1)  # sensor noise
        return np.clip(img, 0, 255).astype(np.uint8)


def episode_frames(room: Room, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` frames of one episode seen from ``room``'s camera, uint8 [n, H, W, 3]."""
    scene = Scene(room, rng)
    return np.stack([scene.frame(i) for i in range(n)])
