"""The Recorder: record episodes into a LeRobot v3.0 dataset on any backend."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from robostore.backends import open_store
from robostore.errors import RobostoreError, SchemaError
from robostore.layout import INFO_PATH
from robostore.meta import DatasetMeta
from robostore.record import journal
from robostore.record.episode import EpisodeBuffer
from robostore.record.files import FileIndex
from robostore.record.frames import TASK_KEY, FrameSchema
from robostore.record.lease import Lease
from robostore.record.repair import repair
from robostore.record.staging import Publisher, Staging, staging_base
from robostore.record.writer import EpisodeWriter
from robostore.schema import DatasetInfo, Feature, parse_model
from robostore.schema.episodes import video_column
from robostore.store import Store
from robostore.validate import validate
from robostore.video import EpisodeEncoder, VideoOptions
from robostore.video.depth import METRE, MILLIMETRE, DepthCodec

log = logging.getLogger(__name__)

_EPISODES_FILE = re.compile(r"chunk-(\d+)/file-(\d+)\.parquet$")
_CODECS = {"av1": "libsvtav1", "h264": "libx264"}


class Recorder:
    """Records episodes into a LeRobot v3.0 dataset at a URL, as lerobot would.

    Make one with :meth:`create` (new dataset) or :meth:`resume` (append to one).
    ``add_frame`` checks a frame against the schema at once and returns quickly:
    camera frames are encoded on background threads while the episode runs.
    ``save_episode`` hands the episode to a background writer and returns its
    index; files are built in a local staging folder and published to the backend
    in the background (data and videos, then the episodes table, then info.json),
    so the caller's loop never waits on the network. ``flush`` waits until every
    saved episode is on the backend; ``close`` (or leaving a ``with`` block) flushes
    and releases the dataset.

    Publishing cadence: on stores where every write is visible at once (local,
    memory, s3, gcs) after every episode; on the Hub, where each publish is a commit,
    every ``publish_every`` episodes (default 10) or ``publish_interval_s`` seconds
    (default 60), whichever comes first.
    """

    def __init__(
        self,
        store: Store,
        meta: DatasetMeta,
        lease: Lease,
        *,
        video: VideoOptions,
        starts: Mapping[str, FileIndex],
        staging_dir: str | os.PathLike[str] | None,
        publish_every: int | None,
        publish_interval_s: float | None,
        image_writer_threads: int,
        recover: bool = False,
    ) -> None:
        transactional = store.transactional
        _tune_malloc()
        self.store = store
        self.video = video
        self.fps = meta.fps
        self.features = dict(meta.features)
        self._schema = FrameSchema(self.features, store.url)
        self._camera_kinds = {k: f.dtype for k, f in self.features.items() if f.is_camera}
        self._lease = lease
        base = staging_base(store, staging_dir)
        earlier = Staging.earlier_sessions(base)
        if earlier and not recover:
            log.warning(
                "removing staging left by an earlier recorder that did not close: %s", ", ".join(map(str, earlier))
            )
            Staging.remove_sessions(earlier)
        self._staging = Staging.start(base)
        self._publisher = Publisher(
            store,
            lease,
            every_episodes=publish_every or (10 if transactional else 1),
            interval_s=publish_interval_s if publish_interval_s is not None else (60.0 if transactional else 0.0),
        )
        self._writer = EpisodeWriter(
            DatasetInfo.from_json(meta.info.to_json()), meta.tasks, meta.stats, self._staging, self._publisher, starts
        )
        self.recovered: list[int] = []
        """Episodes a crashed recorder had saved that ``resume`` published (indices)."""
        if earlier and recover:
            self._recover(earlier)
        self._png_pool = (
            ThreadPoolExecutor(max(1, image_writer_threads), thread_name_prefix="robostore-png")
            if meta.image_keys
            else None
        )
        self._buffer: EpisodeBuffer | None = None
        self._next_episode = meta.total_episodes + len(self.recovered)
        self._closed = False
        self._lock = threading.Lock()
        # Opening an encoder takes tens of ms (SVT-AV1 allocates its pipeline): the
        # next episode's encoders are opened in the background, off add_frame's path.
        self._opener = ThreadPoolExecutor(1, thread_name_prefix="robostore-open-encoders", initializer=_lower_priority)
        self._next_encoders: Future[dict[str, EpisodeEncoder]] | None = None
        self._prepare_encoders()

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        url: str,
        fps: int,
        features: Mapping[str, Feature | Mapping[str, Any]],
        robot_type: str | None = None,
        use_videos: bool = True,
        storage_options: Mapping[str, Any] | None = None,
        video: VideoOptions | None = None,
        chunks_size: int = 1000,
        data_files_size_in_mb: float = 100,
        video_files_size_in_mb: float = 200,
        *,
        staging_dir: str | os.PathLike[str] | None = None,
        publish_every: int | None = None,
        publish_interval_s: float | None = None,
        image_writer_threads: int = 2,
        force: bool = False,
    ) -> Recorder:
        """Start a new dataset at ``url`` and return a recorder for it.

        Args:
            url: dataset root (a folder, ``memory://``, ``s3://``, ``gs://``, ``hf://``...).
            fps: frames per second; timestamps are ``frame_index / fps``.
            features: the user's features as in lerobot (``{"dtype", "shape", "names"}``);
                the five default features are added. Cameras are ``video`` (mp4) or
                ``image`` (PNG in parquet); with ``use_videos=False`` videos become images.
            video: encoder settings (default AV1 as lerobot; ``VideoOptions.h264()`` is
                faster to encode and decode).
            staging_dir: where files are built before upload (default: beside a local
                dataset, else ``$ROBOSTORE_STAGING`` or ``~/.cache/robostore/staging``).
            publish_every, publish_interval_s: publishing cadence (see the class doc).
            image_writer_threads: threads PNG-encoding ``image`` features.
            force: take over the writer lease even if another writer seems alive.

        Raises:
            SchemaError: bad features, or a dataset already exists at ``url``.
            LeaseError: another Recorder is writing there.
        """
        store = open_store(url, storage_options)
        video = video or VideoOptions()
        if TASK_KEY in features:
            raise SchemaError(f"{store.url}: 'task' is given with every frame and cannot be a feature")
        feats: dict[str, Feature] = {}
        for key, value in features.items():
            feature = value if isinstance(value, Feature) else parse_model(Feature, dict(value), f"feature {key!r}")
            if feature.is_depth:
                feats[key] = _depth_feature(key, feature, use_videos, store.url)
                continue
            if feature.dtype == "video" and use_videos:
                height, width, channels = feature.shape
                if channels != 3 or height % 2 or width % 2:
                    raise SchemaError(
                        f"{store.url}: feature {key!r}: video frames must be RGB with even height and width "
                        f"(yuv420p), got shape {list(feature.shape)}"
                    )
                info = {"video.codec": video.info_codec, "video.pix_fmt": video.pix_fmt, **(feature.info or {})}
                feature = feature.model_copy(update={"info": info})
            elif feature.is_camera and feature.shape[2] != 3:
                raise SchemaError(
                    f"{store.url}: feature {key!r}: camera frames must be RGB (3 channels), got {list(feature.shape)}"
                )
            feats[key] = feature
        if store.exists(INFO_PATH):
            raise SchemaError(
                f"{store.describe(INFO_PATH)}: a dataset already exists here; append to it with "
                "Recorder.resume(url) or choose another URL"
            )
        lease = Lease.acquire(store, ttl_s=None if store.transactional else 120.0, force=force)

        def prepare() -> tuple[DatasetMeta, VideoOptions, dict[str, FileIndex]]:
            meta = DatasetMeta.create(
                store, fps, feats, robot_type, use_videos, chunks_size, data_files_size_in_mb, video_files_size_in_mb
            )
            starts = {
                "data": FileIndex(),
                "episodes": FileIndex(),
                **{f"videos/{k}": FileIndex() for k in meta.video_keys},
            }
            return meta, video, starts

        return cls._start(store, lease, prepare, staging_dir, publish_every, publish_interval_s, image_writer_threads)

    @classmethod
    def resume(
        cls,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        *,
        video: VideoOptions | None = None,
        staging_dir: str | os.PathLike[str] | None = None,
        publish_every: int | None = None,
        publish_interval_s: float | None = None,
        image_writer_threads: int = 2,
        force: bool = False,
    ) -> Recorder:
        """Continue recording into the dataset at ``url``.

        First validates the committed dataset (:func:`robostore.validate.validate`:
        metadata, every data file's index columns, every mp4's header) and refuses a
        broken one, changing nothing. Then removes what an interrupted recording left
        uncommitted (see :mod:`robostore.record.repair`; never files it did not
        write), publishes the episodes a crashed recorder had saved (:attr:`recovered`,
        see :mod:`robostore.record.journal`), and continues with the next episode
        index; new
        episodes go into new data, video and episodes files, as lerobot does when it
        resumes. ``video`` defaults to the codec the dataset's videos use. Other
        arguments as in :meth:`create`.

        Raises:
            SchemaError, CorruptDataset, VideoError, NotFound: the dataset is broken
                (the error of its first problem, naming the file); run
                ``robostore validate URL`` for all of them, ``--repair`` to cut a
                dataset damaged by a crash back to its last consistent episode.
            LeaseError: another Recorder is writing there.
        """
        store = open_store(url, storage_options)
        report = validate(store)
        report.raise_for_problems()
        report.refuse_misfiled("Recorder.resume")
        lease = Lease.acquire(store, ttl_s=None if store.transactional else 120.0, force=force)

        def prepare() -> tuple[DatasetMeta, VideoOptions, dict[str, FileIndex]]:
            meta = repair(store)
            channels_first = [k for k in meta.camera_keys if meta.features[k].channels_first]
            if channels_first:
                raise SchemaError(
                    f"{store.url}: cameras {channels_first} are declared [channels, height, width] (as lerobot's "
                    "v2.1→v3.0 converter leaves them); Recorder records [height, width, channels] only. "
                    "Readers read this dataset; record into a new one"
                )
            chosen = video
            if chosen is None:
                codecs = {
                    (meta.features[k].info or {}).get("video.codec", "")
                    for k in meta.video_keys
                    if not meta.features[k].is_depth
                }
                codec = _CODECS.get(next(iter(codecs)), "libsvtav1") if len(codecs) == 1 else "libsvtav1"
                chosen = VideoOptions.h264() if codec == "libx264" else VideoOptions()
            return meta, chosen, _next_files(meta)

        return cls._start(
            store, lease, prepare, staging_dir, publish_every, publish_interval_s, image_writer_threads, recover=True
        )

    @classmethod
    def _start(
        cls,
        store: Store,
        lease: Lease,
        prepare: Callable[[], tuple[DatasetMeta, VideoOptions, dict[str, FileIndex]]],
        staging_dir: str | os.PathLike[str] | None,
        publish_every: int | None,
        publish_interval_s: float | None,
        image_writer_threads: int,
        recover: bool = False,
    ) -> Recorder:
        """A recorder on what ``prepare()`` returns (metadata, encoder settings, next files);
        if anything fails the lease is given back, so the dataset is not left locked."""
        try:
            meta, video, starts = prepare()
            return cls(
                store,
                meta,
                lease,
                video=video,
                starts=starts,
                staging_dir=staging_dir,
                publish_every=publish_every,
                publish_interval_s=publish_interval_s,
                image_writer_threads=image_writer_threads,
                recover=recover,
            )
        except BaseException:
            lease.release()
            store.commit("robostore: release the writer lease")
            raise

    # ------------------------------------------------------------------ recording
    @property
    def url(self) -> str:
        return self.store.url

    @property
    def episode_index(self) -> int:
        """Index the episode being recorded (or the next one) will get."""
        return self._next_episode

    @property
    def frames_in_episode(self) -> int:
        """Frames added to the current episode so far."""
        return self._buffer.length if self._buffer is not None else 0

    @property
    def encoder_backlog(self) -> int:
        """Camera frames added but not yet encoded, over all cameras of this episode."""
        if self._buffer is None:
            return 0
        return sum(enc.backlog for enc in self._buffer.encoders.values())

    @property
    def published_episodes(self) -> int:
        """Episodes on the backend (total_episodes of the last published info.json)."""
        return self._publisher.published_episodes

    def add_frame(self, frame: Mapping[str, Any]) -> None:
        """Add one frame to the current episode (starting one if needed).

        ``frame`` holds every feature except the five defaults, plus ``task`` (str).

        Raises:
            SchemaError: a feature is missing, unknown, or of the wrong dtype/shape;
                nothing is recorded then.
        """
        self._check_usable()
        index = self._next_episode
        values, task = self._schema.check(frame, f"episode {index}, frame {self.frames_in_episode}")
        if self._buffer is None:
            self._buffer = self._new_buffer(index)
        self._buffer.add(values, task, self._camera_kinds, self._png_pool)

    def save_episode(self) -> int:
        """Close the current episode and return its index.

        Returns once the episode is on local disk (fsync'ed in the staging folder's
        journal): a crash after that loses nothing, :meth:`resume` publishes it. Adding
        it to the dataset's files and uploading them happens in the background; call
        :meth:`flush` to wait until it is on the backend.

        Raises:
            SchemaError: the episode has no frames.
            VideoError, StoreError: finishing or journaling the episode failed; it
                is not saved.
        """
        self._check_usable()
        buffer = self._buffer
        if buffer is None or buffer.length == 0:
            raise SchemaError(f"{self.url}: save_episode: the episode has no frames; call add_frame first")
        self._buffer = None
        journaled = self._writer.submit(buffer)
        self._next_episode += 1
        self._prepare_encoders()
        journaled.result()
        return buffer.episode_index

    def discard_episode(self) -> None:
        """Drop the frames of the current episode; its index is reused."""
        if self._buffer is not None:
            self._buffer.abort()
            self._buffer = None
            if self._next_encoders is None:
                self._prepare_encoders()

    def flush(self) -> None:
        """Wait until every saved episode is published to the backend.

        Raises:
            StoreError: publishing failed (the dataset holds the episodes published
                before; ``flush`` again to retry).
        """
        self._writer.join()
        self._publisher.flush()

    def close(self) -> None:
        """Flush saved episodes, release the dataset and clean the staging folder.

        Frames of an unsaved episode are dropped (with a warning).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._buffer is not None:
            log.warning(
                "%s: closing with %d unsaved frame(s) of episode %d; they are dropped",
                self.url,
                self._buffer.length,
                self._next_episode,
            )
            self.discard_episode()
        self._drop_prepared_encoders()
        self._opener.shutdown()
        ok = False
        try:
            self._writer.join()
            self._publisher.close()
            ok = True
        finally:
            self._writer.stop()
            if self._png_pool is not None:
                self._png_pool.shutdown()
            try:
                self._lease.release()
                self.store.commit("robostore: release the writer lease")
            finally:
                if ok:
                    self._staging.remove()
                else:
                    log.error(
                        "%s: saved episodes are not all published; Recorder.resume publishes them from %s",
                        self.url,
                        self._staging.root,
                    )
                self.store.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.discard_episode()
        self.close()

    def __repr__(self) -> str:
        return f"Recorder({self.url!r}, next episode {self._next_episode})"

    # ------------------------------------------------------------------ helpers
    def _check_usable(self) -> None:
        if self._closed:
            raise RobostoreError(f"{self.url}: this Recorder is closed; use Recorder.resume(url) to record more")
        self._writer.check()
        self._publisher.check()

    def _recover(self, sessions: list[Path]) -> None:
        """Publish the episodes crashed ``sessions`` journaled, then delete the sessions."""
        episodes, given_up = journal.recover(sessions, self._writer.info, self._staging.tmp)
        for reason in given_up:
            log.warning("%s: a staged episode cannot be recovered and is deleted: %s", self.url, reason)
        try:
            for episode in episodes:
                self._writer.apply(episode)
            self._publisher.flush()
            # As after any resume, new episodes go into new files (their encoder
            # settings may differ from the crashed recorder's).
            self._writer.start_new_files()
        except BaseException:
            self._writer.stop()
            with contextlib.suppress(Exception):
                self._publisher.close()
            self._staging.remove()
            raise
        self.recovered = [e.episode_index for e in episodes]
        if episodes:
            log.warning(
                "%s: published %d episode(s) a crashed recorder had saved but not published: %d..%d",
                self.url,
                len(episodes),
                episodes[0].episode_index,
                episodes[-1].episode_index,
            )
        Staging.remove_sessions(sessions)

    def _open_encoders(self, index: int) -> dict[str, EpisodeEncoder]:
        encoders = {}
        try:
            for key, kind in self._camera_kinds.items():
                if kind == "video":
                    feature = self.features[key]
                    height, width, _ = feature.shape
                    depth = (
                        (DepthCodec.from_info(feature.info), (feature.info or {}).get("depth_unit", MILLIMETRE))
                        if feature.is_depth
                        else None
                    )
                    encoders[key] = EpisodeEncoder(
                        width,
                        height,
                        self.fps,
                        None if depth else self.video,
                        tmp_dir=self._staging.tmp,
                        name=f"{key} episode {index}",
                        depth=depth,
                    )
        except BaseException:
            for encoder in encoders.values():
                encoder.abort()
            raise
        return encoders

    def _prepare_encoders(self) -> None:
        if any(kind == "video" for kind in self._camera_kinds.values()):
            self._next_encoders = self._opener.submit(self._open_encoders, self._next_episode)

    def _drop_prepared_encoders(self) -> None:
        future, self._next_encoders = self._next_encoders, None
        if future is not None and not future.cancel():
            with contextlib.suppress(Exception):
                for encoder in future.result().values():
                    encoder.abort()

    def _new_buffer(self, index: int) -> EpisodeBuffer:
        buffer = EpisodeBuffer(index)
        future, self._next_encoders = self._next_encoders, None
        if future is not None:
            buffer.encoders = future.result()
            for key, encoder in buffer.encoders.items():
                encoder.name = f"{key} episode {index}"
        return buffer


#: Niceness of the threads that encode video (and of the threads the encoders start).
ENCODER_NICENESS = 5


def _lower_priority() -> None:
    """Lower this thread's CPU priority; threads it starts inherit it (Linux).

    Encoders are opened on this thread, so their worker threads (PyAV's and
    SVT-AV1's own) run below the caller's control loop: when the CPUs are busy the
    loop still gets its slice on time and encoding absorbs the delay in its queue.
    """
    if hasattr(os, "setpriority") and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENCODER_NICENESS)


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Keep glibc from hoarding the memory of encoder threads (Linux, once per process).

    Each episode opens fresh encoders whose many worker threads allocate and free large
    frame buffers; with glibc's defaults (an arena per thread, a mmap threshold that
    grows after every large free) the freed memory stays in the process and RSS grew
    by ~100 MB per 480x640 AV1 episode in benchmarks/record.py. A fixed 128 KiB mmap
    threshold (large buffers go back to the OS on free) and at most 4 arenas keep
    it flat. Set ``MALLOC_ARENA_MAX``/``MALLOC_MMAP_THRESHOLD_`` to choose otherwise.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold, m_arena_max = -3, -8
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(m_mmap_threshold, 128 * 1024)
    if "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(m_arena_max, 4)


def _depth_feature(key: str, feature: Feature, use_videos: bool, where: str) -> Feature:
    """A depth camera as lerobot 0.6 declares it: HEVC ``gray12le`` video, ``is_depth_map``,
    ``depth_unit`` (default millimetres) and the quantizer's ``video.*`` parameters."""
    prefix = f"{where}: feature {key!r}"
    if not (feature.is_video and use_videos):
        raise SchemaError(
            f"{prefix}: depth maps are recorded as video (12-bit HEVC); declare dtype 'video' and keep use_videos=True"
        )
    if feature.shape[2] != 1:
        raise SchemaError(f"{prefix}: depth maps have shape [height, width, 1], got {list(feature.shape)}")
    given = dict(feature.info or {})
    unit = given.get("depth_unit", MILLIMETRE)
    if unit not in (MILLIMETRE, METRE):
        raise SchemaError(f"{prefix}: depth_unit must be 'mm' (integer frames) or 'm' (float frames), got {unit!r}")
    codec = DepthCodec.from_info(given, prefix)
    options = VideoOptions.depth()
    info = {
        "video.codec": options.info_codec,
        "video.pix_fmt": options.pix_fmt,
        "video.is_depth_map": True,
        **codec.info_entries(),
        **given,
        "is_depth_map": True,
        "depth_unit": unit,
    }
    return feature.model_copy(update={"info": info})


def _next_files(meta: DatasetMeta) -> dict[str, FileIndex]:
    """The file each series continues in after resume: the one after the newest."""
    chunks = meta.info.chunks_size
    cols = meta.columns

    def after(chunk_col: str, file_col: str) -> FileIndex:
        if not meta.num_episodes:
            return FileIndex()
        pairs = zip(cols[chunk_col].tolist(), cols[file_col].tolist(), strict=True)
        return FileIndex(*max(pairs)).next(chunks)

    found = [_EPISODES_FILE.search(p) for p in meta.episode_files]
    existing = [FileIndex(int(m[1]), int(m[2])) for m in found if m]
    starts = {
        "data": after("data/chunk_index", "data/file_index"),
        "episodes": max(existing).next(chunks) if existing else FileIndex(),
    }
    for key in meta.video_keys:
        starts[f"videos/{key}"] = after(video_column(key, "chunk_index"), video_column(key, "file_index"))
    return starts


__all__ = ["Recorder", "VideoOptions"]
