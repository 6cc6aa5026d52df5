"""Assembling one sample (the dict lerobot's ``LeRobotDataset[i]`` returns) from a position.

Shared by the map-style :class:`~robostore.torch.Dataset` and the streaming dataset:
both hold the tabular arrays of their episodes and a source of camera frames, and ask
:meth:`SampleAssembler.sample` for a position.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from robostore.errors import SchemaError
from robostore.meta import DatasetMeta
from robostore.torch.deltas import PAD_SUFFIX, neighbours
from robostore.torch.frames import episode_videos
from robostore.torch.tabular import EpisodeIndex, ImageBytes, TabularData
from robostore.video.decode import DecodedFrames, decode_image
from robostore.video.depth import DepthCodec

Transform = Callable[[torch.Tensor], torch.Tensor]


class FrameSource(Protocol):
    """What the assembler asks of its videos (a VideoFrames, or a stream's per-episode ones)."""

    def frames(
        self, path: str, timestamps: Sequence[float], tolerance_s: float, episode: int, key: str | None = None
    ) -> np.ndarray | DecodedFrames: ...


class SampleAssembler:
    """Builds samples: tabular values, neighbours + pad masks, camera frames, task text.

    Args:
        meta: the dataset's metadata (features, video spans, tasks).
        index: the selected episodes.
        tabular: their column arrays (row == position).
        offsets: integer frame offsets per key (from :func:`~robostore.torch.deltas.delta_indices`).
        videos: decodes video frames.
        images: reads PNG bytes of image features.
        tolerance_s: allowed |decoded - wanted| frame time.
        image_transforms: applied to each camera tensor, as lerobot does.
        return_uint8: cameras as uint8 [C, H, W] instead of float32 in [0, 1].
    """

    def __init__(
        self,
        meta: DatasetMeta,
        index: EpisodeIndex,
        tabular: TabularData,
        offsets: Mapping[str, np.ndarray],
        videos: FrameSource,
        images: ImageBytes,
        tolerance_s: float,
        image_transforms: Transform | None = None,
        return_uint8: bool = False,
    ) -> None:
        self.meta = meta
        self.index = index
        self.tabular = tabular
        self.offsets = dict(offsets)
        self.videos = videos
        self.images = images
        self.tolerance_s = tolerance_s
        self.image_transforms = image_transforms
        self.return_uint8 = return_uint8
        features = meta.features
        self.tabular_keys = [k for k, f in features.items() if not f.is_camera and not f.is_language]
        self.language_keys = [k for k, f in features.items() if f.is_language]
        self.image_keys = [k for k, f in features.items() if f.is_image]
        self.video_keys = [k for k, f in features.items() if f.is_video]
        self.depth = {
            k: DepthCodec.from_info(features[k].info, f"{meta.url}: meta/info.json features.{k}.info")
            for k in meta.depth_keys
            if features[k].is_video
        }
        if any(features[k].is_image for k in meta.depth_keys):
            raise SchemaError(
                f"{meta.url}: depth maps stored as images ({[k for k in meta.depth_keys if features[k].is_image]}) "
                "are not supported yet; robostore reads depth maps stored as video"
            )
        self.spans = episode_videos(meta, index.rows)
        self.timestamps = tabular.columns["timestamp"]
        self.task_index = tabular.columns["task_index"]

    def sample(self, position: int) -> dict[str, Any]:
        """The sample at ``position`` (0 <= position < len(index))."""
        slot, global_index = self.index.locate(position)
        episode = int(self.index.episodes[slot])
        ep_from, ep_to = int(self.index.dataset_from[slot]), int(self.index.dataset_to[slot])
        rows: dict[str, np.ndarray | int] = {}
        item: dict[str, Any] = {}
        for key, offsets in self.offsets.items():
            near = neighbours(global_index, offsets, ep_from, ep_to)
            rows[key] = self.index.position(slot, near.indices)
            item[key + PAD_SUFFIX] = torch.from_numpy(near.is_pad)

        for key in self.video_keys:
            span = self.spans[key]
            times = np.atleast_1d(self.timestamps[rows.get(key, position)]).astype(np.float64)
            wanted = (span.from_timestamp[slot] + times).tolist()
            frames = self.videos.frames(span.paths[slot], wanted, self.tolerance_s, episode, key)
            depth = self.depth.get(key)
            if depth is not None:  # float32 millimetres [1, H, W], as lerobot returns them
                assert isinstance(frames, np.ndarray)
                millimetres = torch.from_numpy(depth.decode(frames))
                item[key] = millimetres if key in rows else millimetres[0]
            elif isinstance(frames, DecodedFrames):  # the streaming dataset converts them on output
                item[key] = frames if key in rows else frames.first()
            else:
                item[key] = self._camera(frames if key in rows else frames[0])
        for key in self.image_keys:
            key_rows = np.atleast_1d(rows.get(key, position))
            pictures = np.stack([self.image(key, int(r)) for r in key_rows])
            chw = np.ascontiguousarray(np.moveaxis(pictures, -1, -3))
            item[key] = self._camera(chw if key in rows else chw[0])
        for key in self.tabular_keys:
            item[key] = _tensor(self.tabular.columns[key][rows.get(key, position)])
        for key in self.language_keys:  # lists of message dicts, the caller's to keep
            column = self.tabular.columns[key]
            message_rows = rows.get(key)
            item[key] = copy.deepcopy(
                column[position] if message_rows is None else [column[r] for r in np.atleast_1d(message_rows)]
            )
        item["task"] = self.meta.task(int(self.task_index[position]))
        return item

    def image(self, key: str, row: int) -> np.ndarray:
        """uint8 [H, W, 3] of image feature ``key`` at position ``row``."""
        path = self.tabular.files[int(self.tabular.file_of[row])]
        data = self.images.get(path, key, int(self.tabular.file_row[row]))
        return decode_image(data, f"{self.meta.url}/{path} ({key}, row {int(self.tabular.file_row[row])})")

    def _camera(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 [..., 3, H, W] (C-contiguous, owned by the sample) -> float32 in [0, 1]
        unless return_uint8."""
        return finish_camera(torch.from_numpy(frames), self.return_uint8, self.image_transforms)


def finish_camera(
    tensor: torch.Tensor | DecodedFrames, return_uint8: bool, image_transforms: Transform | None
) -> torch.Tensor:
    """A uint8 [..., 3, H, W] camera tensor (or still decoded frames) as samples hold it:
    float32 in [0, 1] unless ``return_uint8``, then ``image_transforms``.

    Datasets that hold samples for a while (the streaming shuffle buffer) assemble them
    with ``return_uint8=True`` and no transforms, and finish them with this on output.
    """
    if isinstance(tensor, DecodedFrames):
        tensor = torch.from_numpy(tensor.to_array())
    if not return_uint8:
        tensor = torch.from_numpy(unit_float(tensor.numpy()))
    if image_transforms is not None:
        tensor = image_transforms(tensor)
    return tensor


def unit_float(frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 frames as float32 ``x / 255``, as lerobot computes it (one pass, no
    intermediate copy), into ``out`` when given."""
    scaled: np.ndarray = np.divide(frames, np.float32(255), out=out, dtype=np.float32)
    return scaled


def _tensor(value: Any) -> Any:
    """A fresh tensor (0-d for scalars); strings stay strings."""
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "US":  # string features (Arrow gives object or str_)
        return array.item() if array.ndim == 0 else array.tolist()
    return torch.from_numpy(array.copy())
