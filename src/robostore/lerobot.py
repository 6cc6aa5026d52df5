"""A drop-in for lerobot's ``LeRobotDataset`` and ``LeRobotDatasetMetadata``, on robostore.

Code written against lerobot's dataset API changes one import::

    from robostore.lerobot import LeRobotDataset  # was: from lerobot.datasets.lerobot_dataset import ...

    ds = LeRobotDataset("user/pick_place", root="s3://bucket/pick_place", delta_timestamps=...)

``root`` may be any robostore URL (a folder, ``s3://``, ``gs://``, ``hf://``, ``memory://``);
``repo_id`` alone means ``hf://datasets/<repo_id>``. Samples come from
:class:`robostore.Dataset` (the values lerobot returns, see docs/reading.md); the metadata
has lerobot's shapes: features as dicts, stats as numpy arrays, tasks as a DataFrame.

lerobot itself is imported lazily and only to be sure the caller trains with a lerobot we
test (:data:`TESTED_LEROBOT`): not installed is an ImportError naming the extra
(``pip install 'robostore[lerobot]'``), another version a warning.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch.utils.data

from robostore.errors import SchemaError
from robostore.meta import DatasetMeta
from robostore.torch.dataset import Dataset

#: lerobot versions the drop-in is tested with (tests/peers/).
TESTED_LEROBOT = ("0.4.4", "0.6.1")
_EXTRA_HINT = "pip install 'robostore[lerobot]' (or pip install lerobot)"
_DEPTH_OUTPUT_UNIT = "mm"


def require_lerobot() -> str:
    """lerobot's version; raises ImportError naming the extra when it is missing and warns
    when it is not a version robostore is tested with."""
    try:
        importlib.import_module("lerobot")
        version = importlib.metadata.version("lerobot")
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        raise ImportError(
            f"robostore.lerobot needs the lerobot package, which is not installed: {_EXTRA_HINT}"
        ) from exc
    if version not in TESTED_LEROBOT:
        warnings.warn(
            f"lerobot {version} is not a version robostore.lerobot is tested with ({', '.join(TESTED_LEROBOT)}); "
            "samples and metadata follow lerobot 0.6.1",
            UserWarning,
            stacklevel=3,
        )
    return version


def dataset_url(repo_id: str, root: str | None) -> str:
    """Where a dataset lives: ``root`` (any robostore URL or folder), else the Hub repo."""
    if root is not None:
        return str(root)
    if not repo_id or repo_id.count("/") != 1:
        raise SchemaError(f"repo_id {repo_id!r} is not '<owner>/<name>'; pass root= for a dataset elsewhere")
    return f"hf://datasets/{repo_id}"


class LeRobotDatasetMetadata:
    """lerobot's ``LeRobotDatasetMetadata`` read-side API over a :class:`DatasetMeta`.

    Args:
        repo_id: ``<owner>/<name>``; the dataset is ``hf://datasets/<repo_id>`` unless ``root``.
        root: any robostore URL or folder.
        revision: accepted for signature compatibility; the Hub revision comes from the URL
            (``hf://datasets/<repo>@<revision>``).
        storage_options: passed to the fsspec filesystem.
        meta: an already opened :class:`DatasetMeta` (then ``root`` is not read again).
    """

    def __init__(
        self,
        repo_id: str,
        root: str | None = None,
        revision: str | None = None,
        force_cache_sync: bool = False,
        *,
        storage_options: Mapping[str, Any] | None = None,
        meta: DatasetMeta | None = None,
    ) -> None:
        require_lerobot()
        self.repo_id = repo_id
        self.revision = revision
        self._meta = meta if meta is not None else DatasetMeta.open(dataset_url(repo_id, root), storage_options)
        self.root = self._meta.url
        self.info: dict[str, Any] = self._meta.info.to_json_dict()
        for feature in self.info["features"].values():
            feature["shape"] = tuple(feature["shape"])  # lerobot turns shapes into tuples on load
        self.stats = self._lerobot_stats()
        self._tasks: Any = None
        self._episodes: Any = None

    # ------------------------------------------------------------------ info.json
    @property
    def features(self) -> dict[str, dict[str, Any]]:
        features: dict[str, dict[str, Any]] = self.info["features"]
        return features

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    @property
    def data_path(self) -> str:
        return str(self.info["data_path"])

    @property
    def video_path(self) -> str | None:
        return self.info.get("video_path")

    @property
    def image_keys(self) -> list[str]:
        return self._meta.image_keys

    @property
    def video_keys(self) -> list[str]:
        return self._meta.video_keys

    @property
    def camera_keys(self) -> list[str]:
        return self._meta.camera_keys

    @property
    def depth_keys(self) -> list[str]:
        return self._meta.depth_keys

    @property
    def has_language_columns(self) -> bool:
        return bool(self._meta.language_keys)

    @property
    def names(self) -> dict[str, Any]:
        return {key: f.get("names") for key, f in self.features.items()}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {key: tuple(f["shape"]) for key, f in self.features.items()}

    @property
    def total_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def total_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def total_tasks(self) -> int:
        return int(self.info["total_tasks"])

    @property
    def chunks_size(self) -> int:
        return int(self.info["chunks_size"])

    @property
    def data_files_size_in_mb(self) -> float:
        return float(self.info["data_files_size_in_mb"])

    @property
    def video_files_size_in_mb(self) -> float:
        return float(self.info["video_files_size_in_mb"])

    # ------------------------------------------------------------------ tasks, episodes
    @property
    def tasks(self) -> Any:
        """pandas DataFrame indexed by task text with a ``task_index`` column, as lerobot has it."""
        if self._tasks is None:
            import pandas as pd

            self._tasks = pd.DataFrame(
                {"task_index": np.arange(len(self._meta.tasks), dtype=np.int64)},
                index=pd.Index(self._meta.tasks, name="task"),
            )
        return self._tasks

    def get_task_index(self, task: str) -> int | None:
        return int(self.tasks.loc[task].task_index) if task in self.tasks.index else None

    @property
    def episodes(self) -> Any:
        """The episodes table (every column but the per-episode stats) as a ``datasets.Dataset``,
        as lerobot holds it."""
        if self._episodes is None:
            import datasets

            table = self._meta.episodes
            keep = [c for c in table.column_names if not c.startswith("stats/")]
            self._episodes = datasets.Dataset(datasets.table.InMemoryTable(table.select(keep)))
        return self._episodes

    def _lerobot_stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        """stats.json as numpy arrays; depth stats converted to the unit samples come in
        (millimetres), as lerobot's ``rescale_depth_stats`` does."""
        if self._meta.stats is None:
            return None
        stats = {
            key: {name: np.array(value) for name, value in values.items()}
            for key, values in self._meta.stats.to_json_dict().items()
        }
        for key in self._meta.depth_keys:
            unit = (self._meta.features[key].info or {}).get("depth_unit")
            if key in stats and unit == "m":
                stats[key] = {name: value if name == "count" else value * 1000.0 for name, value in stats[key].items()}
        return stats

    def __repr__(self) -> str:
        return f"LeRobotDatasetMetadata({self.repo_id!r}, root={self.root!r}, episodes={self.total_episodes}, frames={self.total_frames})"


class LeRobotDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """lerobot's ``LeRobotDataset`` (read side), backed by a :class:`robostore.Dataset`.

    Same constructor as lerobot's (write-side arguments are refused), the samples of
    :class:`robostore.Dataset` (lerobot's values, see docs/reading.md), and lerobot's
    attributes: ``meta`` (:class:`LeRobotDatasetMetadata`), ``repo_id``, ``root``,
    ``num_frames``, ``num_episodes``, ``fps``, ``features``, ``episodes``,
    ``delta_timestamps``, ``delta_indices``, ``tolerance_s``, ``video_backend``. It pickles
    for DataLoader workers like the dataset it wraps (``dataset``).

    Args:
        repo_id: ``<owner>/<name>``; read from ``hf://datasets/<repo_id>`` unless ``root``.
        root: any robostore URL or folder.
        storage_options: passed to the fsspec filesystem (credentials, endpoint ...).
        **robostore_options: further :class:`robostore.Dataset` arguments (``frame_cache``).

    Raises:
        ImportError: lerobot is not installed (the message names the extra).
        SchemaError: a write-side argument, or a depth unit other than millimetres.
    """

    def __init__(
        self,
        repo_id: str,
        root: str | None = None,
        episodes: Sequence[int] | None = None,
        image_transforms: Callable[[Any], Any] | None = None,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        tolerance_s: float = 1e-4,
        revision: str | None = None,
        force_cache_sync: bool = False,
        download_videos: bool = True,
        video_backend: str | None = None,
        return_uint8: bool = False,
        depth_output_unit: str = _DEPTH_OUTPUT_UNIT,
        batch_encoding_size: int = 1,
        *,
        storage_options: Mapping[str, Any] | None = None,
        **robostore_options: Any,
    ) -> None:
        if depth_output_unit != _DEPTH_OUTPUT_UNIT:
            raise SchemaError(
                f"depth_output_unit={depth_output_unit!r}: robostore returns depth in millimetres ('mm') only"
            )
        if batch_encoding_size != 1:
            raise SchemaError("batch_encoding_size is a recording argument; record with robostore.Recorder")
        require_lerobot()
        #: The robostore dataset the samples come from.
        self.dataset = Dataset(
            dataset_url(repo_id, root),
            episodes=episodes,
            delta_timestamps=delta_timestamps,
            image_transforms=image_transforms,
            tolerance_s=tolerance_s,
            storage_options=storage_options,
            video_backend=video_backend,
            return_uint8=return_uint8,
            **robostore_options,
        )
        self.meta = LeRobotDatasetMetadata(repo_id, revision=revision, meta=self.dataset.meta)
        self.repo_id = repo_id
        self.root = self.dataset.meta.url
        self.revision = revision

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.dataset[idx]

    @property
    def num_frames(self) -> int:
        return self.dataset.num_frames

    @property
    def num_episodes(self) -> int:
        return self.dataset.num_episodes

    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.meta.features

    @property
    def episodes(self) -> list[int] | None:
        return self.dataset.episodes

    @property
    def delta_timestamps(self) -> dict[str, list[float]] | None:
        return self.dataset.delta_timestamps

    @property
    def delta_indices(self) -> dict[str, list[int]] | None:
        return self.dataset.delta_indices

    @property
    def tolerance_s(self) -> float:
        return self.dataset.tolerance_s

    @property
    def video_backend(self) -> str:
        return self.dataset.video_backend

    @property
    def image_transforms(self) -> Callable[[Any], Any] | None:
        return self.dataset.image_transforms

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset({self.repo_id!r}, root={self.root!r}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, fps={self.fps})"
        )
