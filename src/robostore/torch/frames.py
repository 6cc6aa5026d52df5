"""Camera frames for samples: video decoding with per-process open readers, and PNG images.

:class:`VideoFrames` keeps up to ``max_open`` video readers open (LRU) in each process.
It remembers the process it opened them in: after a fork (DataLoader workers) the
inherited readers are dropped unused and new ones are opened, and pickling (spawn)
carries only the store, so nothing unpicklable or process-bound crosses.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robostore.errors import NotFound, RobostoreError, SchemaError, VideoError
from robostore.meta import DatasetMeta
from robostore.reader_pool import ReaderPool
from robostore.schema import Feature
from robostore.schema.episodes import video_column
from robostore.store import Store
from robostore.torch.process import PerProcessStore
from robostore.video.conformance import VideoFacts, check_conformance
from robostore.video.decode import DecodedFrames, VideoReader, VideoSource

#: Video backends: PyAV (default) and torchcodec (when installed).
BACKENDS = ("pyav", "torchcodec")


@dataclass(frozen=True)
class EpisodeVideos:
    """Where one camera's frames of each selected episode are: mp4 path and start time in it."""

    paths: list[str]  # per episode slot
    from_timestamp: np.ndarray  # float64 per episode slot


def episode_videos(meta: DatasetMeta, rows: np.ndarray) -> dict[str, EpisodeVideos]:
    """Per video key, the spans of the episodes at ``rows`` of the episodes table."""
    cols = meta.columns
    out = {}
    for key in meta.video_keys:
        chunks = cols[video_column(key, "chunk_index")][rows].tolist()
        files = cols[video_column(key, "file_index")][rows].tolist()
        names = {pair: meta.info.video_file(key, *pair) for pair in set(zip(chunks, files, strict=True))}
        out[key] = EpisodeVideos(
            [names[pair] for pair in zip(chunks, files, strict=True)],
            cols[video_column(key, "from_timestamp")][rows].astype(np.float64),
        )
    return out


class FrameCache(Protocol):
    """What :class:`VideoFrames` asks of a frame cache (decoded frames kept across epochs).

    Frames are channels first, as torch wants them: uint8 [T, 3, H, W].
    """

    def get(self, video_path: str, timestamps: Sequence[float]) -> np.ndarray | None:
        """uint8 [T, 3, H, W] frames of ``video_path`` at file ``timestamps`` (a fresh
        array the caller may keep), or None."""

    def put(self, video_path: str, timestamps: Sequence[float], frames: np.ndarray) -> None:
        """Remember decoded ``frames`` (uint8 [T, 3, H, W])."""


def bind_frame_cache(frame_cache: Any, meta: DatasetMeta, tolerance_s: float) -> FrameCache | None:
    """The :class:`FrameCache` protocol object for ``frame_cache``.

    A :class:`robostore.FrameCache` is bound to this dataset's state (its fingerprint)
    and seen by mp4 path and timestamps; any other object is taken as the protocol.
    """
    bind = getattr(frame_cache, "for_dataset", None)
    bound: FrameCache | None = bind(meta).files(tolerance_s) if bind is not None else frame_cache
    return bound


class _Reader(VideoFacts, Protocol):
    """An open video the readers take frames from (PyAV's VideoReader or torchcodec's)."""

    def frames_at(
        self,
        timestamps: Sequence[float],
        tolerance_s: float = ...,
        *,
        episode: int | None = ...,
        channels_first: bool = ...,
    ) -> np.ndarray: ...

    def close(self) -> None: ...


def check_backend(video_backend: str | None) -> str:
    """The backend to use; raises when it is unknown or not installed."""
    backend = video_backend or "pyav"
    if backend not in BACKENDS:
        raise SchemaError(f"video_backend={video_backend!r} is not supported; use one of {list(BACKENDS)}")
    if backend == "torchcodec" and importlib.util.find_spec("torchcodec") is None:
        raise RobostoreError(
            "video_backend='torchcodec' needs the torchcodec package, which is not installed: "
            "pip install torchcodec (matching your torch version), or use video_backend='pyav'"
        )
    return backend


class VideoFrames:
    """Decodes frames at given timestamps from the dataset's mp4s, keeping readers open.

    Args:
        store: the dataset's store; remote files are read through ``Store.open``
            (ranged, block-cached reads), local files by path.
        backend: ``"pyav"`` or ``"torchcodec"`` (see :func:`check_backend`).
        max_open: readers kept open per process.
        frame_cache: optional :class:`FrameCache` consulted before decoding.
        keep_recent: decoded frames each reader remembers, so that queries moving
            forward through overlapping windows (``delta_timestamps``) never seek.
        open_source: ``open_source(path, episode)`` gives what a reader for ``path``
            reads (a local path or a seekable file object, which the reader then
            owns); by default a local path or ``Store.open``. The streaming dataset
            passes one that serves prefetched bytes.
        features: the dataset's features; a file opened for a video key is checked
            against its feature (frame size, codec) before any frame is returned.
    """

    def __init__(
        self,
        store: Store | PerProcessStore,
        backend: str = "pyav",
        max_open: int = 16,
        frame_cache: FrameCache | None = None,
        keep_recent: int = 8,
        open_source: Callable[[str, int], VideoSource] | None = None,
        features: Mapping[str, Feature] | None = None,
    ) -> None:
        self.store = store if isinstance(store, PerProcessStore) else PerProcessStore(store)
        self.backend = check_backend(backend)
        self.max_open = max_open
        self.frame_cache = frame_cache
        self.keep_recent = keep_recent
        self.open_source = open_source
        self.features = dict(features or {})
        self._pool: ReaderPool[_Reader] = ReaderPool(max_open)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "backend": self.backend,
            "max_open": self.max_open,
            "frame_cache": self.frame_cache,
            "keep_recent": self.keep_recent,
            "open_source": self.open_source,
            "features": self.features,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, **state)

    def frames(
        self,
        path: str,
        timestamps: Sequence[float],
        tolerance_s: float,
        episode: int,
        key: str | None = None,
        *,
        decoded: bool = False,
        out: np.ndarray | None = None,
    ) -> np.ndarray | DecodedFrames:
        """uint8 [T, 3, H, W] frames of ``path`` at ``timestamps`` (seconds in the file), one seek.

        ``key`` is the video feature ``path`` belongs to (checked against ``features``).
        With ``decoded``, frames that come from the PyAV decoder (no frame cache) are
        returned still decoded (:class:`~robostore.video.decode.DecodedFrames`), for
        callers that convert them later, straight into their output. With ``out``
        (uint8 [T, 3, H, W], C-contiguous) the frames are written there and ``out`` is
        returned.
        Depth-map features give their 12-bit codes, uint16 [T, 1, H, W], always as an
        array and never through the frame cache (which holds RGB).
        """
        depth = self._is_depth(key)
        cache = None if depth else self.frame_cache
        if cache is not None:
            cached = cache.get(path, timestamps)
            if cached is not None:
                return _into(cached, out)
        reader = self._pool.get(path, lambda: self._open(path, episode, key))
        try:
            if decoded and cache is None and not depth and isinstance(reader, VideoReader):
                return reader.decoded_at(timestamps, tolerance_s, episode=episode)
            if isinstance(reader, VideoReader):
                frames = reader.frames_at(timestamps, tolerance_s, episode=episode, channels_first=True, out=out)
            else:
                frames = _into(reader.frames_at(timestamps, tolerance_s, episode=episode, channels_first=True), out)
        except BaseException:
            self._evict(path)  # its decoder state is unknown after a failure
            raise
        if cache is not None:
            cache.put(path, timestamps, frames)
        return frames

    def frames_many(
        self,
        key: str,
        queries: Sequence[tuple[str, Sequence[float], int]],
        tolerance_s: float,
        out: np.ndarray,
    ) -> None:
        """The frames of several ``(path, timestamps, episode)`` queries of video ``key``
        into ``out`` (uint8 [len(queries), T, 3, H, W]).

        With a frame cache that serves sets of frames (``get_many``) all come from one
        cache read. Otherwise each file's queries are decoded in time order, so that
        queries sharing a GOP (or overlapping) decode it once.
        """
        get_many = getattr(self.frame_cache, "get_many", None)
        if get_many is not None:
            flat = out.view()
            flat.shape = (-1, *out.shape[2:])  # raises rather than copying
            if get_many([(path, timestamps) for path, timestamps, _ in queries], flat):
                return
        order = sorted(range(len(queries)), key=lambda q: (queries[q][0], min(queries[q][1])))
        for q in order:
            path, timestamps, episode = queries[q]
            self.frames(path, timestamps, tolerance_s, episode, key, out=out[q])

    def close(self) -> None:
        """Close every open reader of this process."""
        self._pool.close()

    # ------------------------------------------------------------------ internals
    def _is_depth(self, key: str | None) -> bool:
        feature = self.features.get(key) if key is not None else None
        return feature is not None and feature.is_depth

    def _evict(self, path: str) -> None:
        self._pool.evict(path)

    def _open(self, path: str, episode: int, key: str | None) -> _Reader:
        store = self.store.get()
        name = store.describe(path)
        source: VideoSource
        if self.open_source is not None:
            source = self.open_source(path, episode)
        elif (local := store.local_path(path)) is not None:
            source = local
            if not os.path.isfile(source):
                raise NotFound(f"{name}: video file not found (needed for episode {episode}); re-copy the dataset")
        else:
            try:
                source = store.open(path)
            except NotFound as exc:
                raise NotFound(
                    f"{name}: video file not found (needed for episode {episode}); re-copy the dataset"
                ) from exc
        close_file = not isinstance(source, str)
        reader: _Reader | None = None
        try:
            depth = self._is_depth(key)
            if self.backend == "torchcodec" and not depth:  # depth maps: PyAV, as lerobot does
                reader = _TorchcodecReader(source, name)
            else:
                # Decoder threads cost more than they give for one frame per seek, and
                # DataLoader workers already use the cores.
                reader = VideoReader(
                    source, name, thread_type="NONE", keep_recent=self.keep_recent, close_file=close_file, depth=depth
                )
            if key in self.features:
                # A file of another size would give frames of the wrong shape, silently.
                check_conformance(reader, key, self.features[key])
            return reader
        except BaseException:
            if reader is not None:
                reader.close()
            if not isinstance(source, str):  # close_file
                source.close()
            raise


def _into(frames: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return frames
    out[...] = frames
    return out


class _TorchcodecReader:
    """``frames_at`` on torchcodec's VideoDecoder, with lerobot's torchcodec semantics.

    Frames are picked by index (``round(t * fps)``) and their pts checked against the
    query within ``tolerance_s``.
    """

    def __init__(self, source: VideoSource, name: str) -> None:
        from torchcodec.decoders import VideoDecoder

        self.name = name
        self._source = source
        try:
            self._decoder = VideoDecoder(source, seek_mode="approximate")
        except (RuntimeError, ValueError, OSError) as exc:
            raise VideoError(f"{name}: torchcodec cannot open the video: {exc}") from exc
        metadata = self._decoder.metadata
        if metadata.average_fps is None or metadata.height is None or metadata.width is None:
            raise VideoError(f"{name}: torchcodec finds no frame rate or frame size in the video stream")
        self._fps = float(metadata.average_fps)
        self.height, self.width, self.codec = int(metadata.height), int(metadata.width), metadata.codec or ""

    def frames_at(
        self,
        timestamps: Sequence[float],
        tolerance_s: float = 1e-4,
        *,
        episode: int | None = None,
        channels_first: bool = False,
    ) -> np.ndarray:
        indices = [round(t * self._fps) for t in timestamps]
        try:
            batch = self._decoder.get_frames_at(indices=indices)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise VideoError(
                f"{self.name}: episode {episode}: torchcodec failed at t={list(timestamps)}: {exc}"
            ) from exc
        got = batch.pts_seconds.numpy()
        diff = np.abs(got - np.asarray(timestamps))
        if (diff >= tolerance_s).any():
            i = int(np.argmax(diff))
            raise VideoError(
                f"{self.name}: wanted frame at t={timestamps[i]:.6f}s (episode {episode}) but the closest "
                f"decoded frame is at t={got[i]:.6f}s (>= tolerance_s={tolerance_s})"
            )
        data = batch.data if channels_first else batch.data.permute(0, 2, 3, 1)
        frames: np.ndarray = data.contiguous().numpy()
        return frames

    def close(self) -> None:
        if not isinstance(self._source, str):
            self._source.close()
