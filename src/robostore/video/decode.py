"""Decoding frames out of mp4 files (PyAV), for random access and for streaming.

One :class:`VideoReader` holds one open container and decoder. It is meant to be
kept open and reused (the map-style Dataset keeps a few per worker in an LRU):

* :meth:`VideoReader.frames_at` answers "the frames at these timestamps" the way
  lerobot does: seek to the keyframe at or before the earliest timestamp, decode
  forward past the latest, take the frame with the closest pts for each query and
  fail when it is ``tolerance_s`` or more away. When the next call asks for frames
  a little ahead of (or among the last few of) the frames already decoded, it goes
  on from the decoder's current position instead of seeking again: sequential
  access then decodes every frame exactly once.
* :meth:`VideoReader.iter_frames` decodes a time range once, in order (streaming).

Pixels are converted as ``frame.to_ndarray(format="rgb24")`` converts them, which is
what lerobot's pyav backend (torchvision's VideoReader, ``frame.to_rgb()``) does, so
``frames / 255`` equals lerobot's float frames. Readers that want channels first
(``channels_first=True``: torch's [3, H, W]) get the same values converted to planar RGB
(``gbrp``), copied plane by plane, where swscale's planar output is exact (see
:data:`PLANAR_FORMATS`); otherwise the RGB frame is transposed.

Depth-map videos (``depth=True``, see :mod:`robostore.video.depth`) are read as lerobot
reads them: each frame as ``gray12le``, its 12-bit codes as uint16 [H, W, 1]
([1, H, W] channels first); :class:`~robostore.video.depth.DepthCodec` maps them to
millimetres.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import math
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import IO, Any, Literal

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image, UnidentifiedImageError

from robostore.errors import CorruptDataset, VideoError
from robostore.video._errors import wrap_av_errors

log = logging.getLogger(__name__)

ThreadMode = Literal["AUTO", "FRAME", "SLICE", "NONE"]

#: What a VideoReader reads: a local path, or a seekable binary file object.
VideoSource = str | IO[bytes] | io.RawIOBase

_SMALL_FRAME_PIXELS = 320 * 240

#: Decoded pixel formats whose planar RGB (``gbrp``) conversion equals the ``rgb24`` one,
#: value for value (checked by the tests for each). swscale's planar output also needs a
#: width that is a multiple of 16: below that it leaves the last columns unwritten
#: (measured with FFmpeg 8.1 as PyAV 18 bundles it), so other widths go through ``rgb24``.
PLANAR_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv444p", "yuv422p"})
_PLANAR_WIDTH_MULTIPLE = 16


def _reformat_takes_threads() -> bool:
    try:
        VideoReformatter().reformat(av.VideoFrame(16, 16, "yuv420p"), format="rgb24", threads=1)
    except TypeError:  # PyAV 15 and older
        return False
    return True


_REFORMAT_THREADS = _reformat_takes_threads()
_HINT = "The file may be truncated or corrupt: re-download it (robostore mirror) or re-record the episode"


class VideoReader:
    """One open video file: container + first video stream + decoder state.

    Args:
        file: a seekable binary file object (e.g. from ``Store.open(path)``) or a
            local path. The reader does not close a file object it was given
            unless ``close_file=True``.
        name: how the file is named in error messages (dataset-relative path or URL).
        thread_type: FFmpeg decoder threading. ``"AUTO"`` lets the decoder use
            frame+slice threads; ``"NONE"`` decodes on one thread. None (default)
            picks ``"NONE"`` below 320x240 pixels, where thread hand-offs cost more
            than decoding (measured 2-3x slower with threads at 48x64), else ``"AUTO"``.
            Use ``"NONE"`` when many readers run in DataLoader workers.
        keep_recent: how many decoded frames to remember so that overlapping
            queries (``delta_timestamps`` windows moving forward) need no re-decode.
        close_file: close ``file`` when the reader is closed.
        depth: a depth-map video: frames come out as uint16 12-bit codes, one channel.

    Raises:
        VideoError: the bytes are not a readable video or have no video stream.
    """

    def __init__(
        self,
        file: VideoSource,
        name: str | None = None,
        *,
        thread_type: ThreadMode | None = None,
        keep_recent: int = 8,
        close_file: bool = False,
        depth: bool = False,
    ) -> None:
        self.name = name if name is not None else str(file)
        self._file = file
        self._close_file = close_file
        self._container: av.container.InputContainer | None = None
        with wrap_av_errors(self.name, "opening the video", _HINT):
            container = av.open(file, mode="r")
        try:
            if not container.streams.video:
                kinds = [s.type for s in container.streams]
                why = (
                    f"it holds only {kinds} streams, not a camera recording"
                    if kinds
                    else "no streams at all: the file is probably truncated"
                )
                raise VideoError(f"{self.name}: no video stream in this file ({why}). {_HINT}")
            self._container = container
            self._stream = container.streams.video[0]
            self._rgb: _RgbConverter = (_DepthConverter if depth else _RgbConverter)(self.name, self.height, self.width)
            cc = self._stream.codec_context
            if thread_type is None:
                small = (cc.width or 0) * (cc.height or 0) < _SMALL_FRAME_PIXELS
                thread_type = "NONE" if small else "AUTO"
            if thread_type == "NONE":
                cc.thread_count = 1
            else:
                self._stream.thread_type = thread_type
            self.thread_type: ThreadMode = thread_type
            self._time_base: Fraction = self._stream.time_base or Fraction(1, 1)
            self._seconds_per_tick = float(
                self._time_base
            )  # per frame, Fraction arithmetic costs more than decoding's bookkeeping
            rate = self._stream.average_rate or self._stream.guessed_rate
            self._fps: float | None = float(rate) if rate else None
        except BaseException:
            container.close()
            raise
        self._decoder: Iterator[av.VideoFrame] | None = None  # live forward position
        # (time_s, frame) of the last decoded frames, in decode (= pts) order.
        self._recent: collections.deque[tuple[float, av.VideoFrame]] = collections.deque(maxlen=max(1, keep_recent))
        self._gop_s = 0.0  # longest keyframe interval seen so far
        self._last_key_s: float | None = None
        self.seeks = 0  # number of container seeks, for tests and benchmarks
        self.decoded = 0  # number of decoded frames

    # -- properties -----------------------------------------------------------------

    @property
    def width(self) -> int:
        """Frame width in pixels."""
        return int(self._stream.codec_context.width)

    @property
    def height(self) -> int:
        """Frame height in pixels."""
        return int(self._stream.codec_context.height)

    @property
    def fps(self) -> float | None:
        """Average frame rate of the stream, when the container knows it."""
        return self._fps

    @property
    def time_base(self) -> Fraction:
        """Time base of the stream's pts."""
        return self._time_base

    @property
    def duration(self) -> float | None:
        """Stream duration in seconds (container duration as fallback), if known."""
        if self._stream.duration is not None:
            return float(self._stream.duration * self._time_base)
        c = self._require_open()
        if c.duration is not None:
            return c.duration / av.time_base
        return None

    @property
    def end_time(self) -> float | None:
        """Time in seconds where the stream ends (its start time plus its duration), if known.

        A stream need not start at 0: files cut from longer recordings start late.
        """
        duration = self.duration
        if duration is None:
            return None
        start = self._stream.start_time
        return duration + (float(start * self._time_base) if start is not None else 0.0)

    @property
    def codec(self) -> str:
        """Codec name as FFmpeg reports it (``av1``, ``h264``...)."""
        return str(self._stream.codec_context.codec.canonical_name)

    @property
    def num_frames(self) -> int | None:
        """Number of frames from the container index, or None when unknown."""
        n = int(self._stream.frames or 0)
        return n or None

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """Close the container (and the file when ``close_file``). Idempotent."""
        self._decoder = None
        self._recent.clear()
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None
                if self._close_file and hasattr(self._file, "close"):
                    self._file.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()

    # -- decoding -------------------------------------------------------------------

    def frames_at(
        self,
        timestamps: Sequence[float],
        tolerance_s: float = 1e-4,
        *,
        episode: int | None = None,
        channels_first: bool = False,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Decode the frames closest to ``timestamps`` (seconds inside this file).

        Returns:
            uint8 array [T, H, W, 3] (RGB), one frame per timestamp, in query order;
            [T, 3, H, W] with ``channels_first`` (depth readers: uint16 codes with one
            channel). With ``out`` (a C-contiguous array of that shape and dtype) the
            frames are written there and ``out`` is returned.

        Raises:
            VideoError: a timestamp has no frame within ``tolerance_s`` (beyond the
                end of the file, or metadata that does not match the video), or the
                file cannot be decoded.
        """
        frames = DecodedFrames(*self._pick(timestamps, tolerance_s, episode), self._rgb)
        shape = frames.shape_for(channels_first)
        dtype = self._rgb.dtype
        if out is None:
            out = np.empty(shape, dtype=dtype)
        elif out.shape != shape or out.dtype != dtype:
            raise VideoError(
                f"{self.name}: frames are {dtype} {list(shape)}, the output buffer is {out.dtype} {list(out.shape)}"
            )
        frames.write(out, channels_first)
        return out

    def decoded_at(
        self, timestamps: Sequence[float], tolerance_s: float = 1e-4, *, episode: int | None = None
    ) -> DecodedFrames:
        """The frames :meth:`frames_at` would return, not yet converted to RGB.

        They stay in the decoder's pixel format (4:2:0: half the bytes of RGB), copied
        out of the decoder's buffers, until :meth:`DecodedFrames.write` converts them,
        straight into the caller's memory: the streaming dataset holds these in its
        shuffle buffer.

        Raises:
            VideoError: as :meth:`frames_at`.
        """
        return DecodedFrames(*self._pick(timestamps, tolerance_s, episode), self._rgb, compact=True)

    def _pick(
        self, timestamps: Sequence[float], tolerance_s: float, episode: int | None
    ) -> tuple[list[av.VideoFrame], list[float]]:
        """The decoded frame closest to each timestamp, and its time."""
        if len(timestamps) == 0:
            return [], []
        ts = [float(t) for t in timestamps]
        if any(math.isnan(t) for t in ts):
            raise VideoError(f"{self.name}: NaN timestamp requested{self._ep(episode)}")
        t_min, t_max = min(ts), max(ts)
        with wrap_av_errors(self.name, lambda: f"decoding t={t_min:.4f}..{t_max:.4f}s{self._ep(episode)}", _HINT):
            candidates = self._decode_range(t_min, t_max, tolerance_s)
        if not candidates:
            raise VideoError(
                f"{self.name}: no frame decoded for timestamps {t_min:.6f}..{t_max:.6f}s"
                f"{self._ep(episode)} (video duration {self._fmt(self.duration)}s); the "
                "episodes table does not match this video file"
            )
        times = [c[0] for c in candidates]
        picked = []
        for t in ts:
            j = min(range(len(times)), key=lambda k: abs(times[k] - t))  # few candidates: cheaper than numpy calls
            if abs(times[j] - t) >= tolerance_s:
                raise VideoError(
                    f"{self.name}: wanted frame at t={t:.6f}s{self._ep(episode)} but the "
                    f"closest decoded frame is at t={times[j]:.6f}s "
                    f"(|diff|={abs(times[j] - t):.6f}s >= tolerance_s={tolerance_s}; "
                    f"video duration {self._fmt(self.duration)}s). The episodes table's "
                    "timestamps do not match the video: check from_timestamp/fps or "
                    "re-encode the episode"
                )
            picked.append(candidates[j])
        return [c[1] for c in picked], [c[0] for c in picked]

    def iter_frames(
        self, start_s: float, end_s: float, *, eps: float = 1e-4, channels_first: bool = False
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Yield ``(timestamp_s, uint8 [H, W, 3])`` for each frame in ``[start_s, end_s)``
        (``[3, H, W]`` with ``channels_first``).

        Decodes sequentially after one seek. Both ends are compared with a slack of
        ``eps``: a frame at ``start_s - eps/2`` is yielded, one at ``end_s - eps/2`` is
        not, since ``end_s`` is exclusive as an episode's ``to_timestamp`` is (that
        frame belongs to the next episode). Do not call other methods of this reader
        while iterating.
        """
        with wrap_av_errors(self.name, f"seeking to t={start_s:.4f}s", _HINT):
            pending = self._seek_before(start_s - eps, eps / 2)
        while True:
            with wrap_av_errors(self.name, lambda: f"decoding t={start_s:.4f}..{end_s:.4f}s", _HINT):
                item = pending.pop() if pending else self._next_frame()
            if item is None:
                return
            t, frame = item
            if t < start_s - eps:
                continue
            if t >= end_s - eps:
                return
            arr = np.empty(self._rgb.shape(channels_first), dtype=self._rgb.dtype)
            self._rgb.convert(frame, t, arr, channels_first)
            yield t, arr

    # -- internals ------------------------------------------------------------------

    def _require_open(self) -> av.container.InputContainer:
        if self._container is None:
            raise VideoError(f"{self.name}: reader is closed")
        return self._container

    @staticmethod
    def _ep(episode: int | None) -> str:
        return f" (episode {episode})" if episode is not None else ""

    @staticmethod
    def _fmt(v: float | None) -> str:
        return "unknown" if v is None else f"{v:.4f}"

    def _seek(self, t: float) -> None:
        container = self._require_open()
        self._recent.clear()
        self._last_key_s = None  # keyframe spacing is only measured on contiguous decode
        # One tick early, as lerobot seeks: with B-frames the demuxer can otherwise land on
        # the keyframe that follows a frame exactly at ``t`` (measured on x265 output).
        target = max(0, round(t / self._time_base) - 1) if t > 0 else 0
        if self._stream.start_time is not None:
            target = max(target, int(self._stream.start_time))
        container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._decoder = container.decode(self._stream)
        self.seeks += 1

    def _next_frame(self) -> tuple[float, av.VideoFrame] | None:
        """Next decoded frame at the current position, or None at end of stream."""
        if self._decoder is None:
            return None
        try:
            frame = next(self._decoder, None)
            while frame is not None and frame.pts is None:
                frame = next(self._decoder, None)
        except BaseException:
            # A failed decoder generator cannot be resumed: start over on the next call.
            self._decoder = None
            self._recent.clear()
            raise
        if frame is not None and frame.pts is not None:  # (the loop above skipped frames without one)
            t = frame.pts * self._seconds_per_tick
            self.decoded += 1
            if frame.key_frame:
                if self._last_key_s is not None and t > self._last_key_s:
                    self._gop_s = max(self._gop_s, t - self._last_key_s)
                self._last_key_s = t
            self._recent.append((t, frame))
            return t, frame
        self._decoder = None
        return None

    def _can_continue(self, t_min: float, tolerance_s: float) -> bool:
        """Whether the frames for ``t_min`` can come from the current position."""
        if not self._recent:
            return False
        first_t, last_t = self._recent[0][0], self._recent[-1][0]
        if t_min >= first_t - tolerance_s and t_min <= last_t + tolerance_s:
            return True  # among the frames remembered (and ahead of them is forward decode)
        if self._decoder is None or t_min < last_t:
            return False
        # Ahead of the decoder: going on costs decoding (t_min - last_t) worth of frames,
        # a seek costs decoding from the keyframe before t_min. Going on wins when no
        # keyframe can lie in between, i.e. within one GOP.
        # Before two keyframes were seen, the next frame or so is always worth going on.
        frame_dt = 1.0 / self.fps if self.fps else 0.0
        return t_min - last_t <= max(self._gop_s, 1.5 * frame_dt) + tolerance_s

    def _seek_before(self, t_min: float, tolerance_s: float) -> list[tuple[float, av.VideoFrame]]:
        """Seek so that decoding starts at or before ``t_min``; the frames decoded so far.

        With B-frames (reordered streams) a keyframe can come before a frame in decode
        order but after it in time: when the first frame lands past ``t_min``, seek
        again further back (1 s, then twice as far each time)."""
        back = 0.0
        while True:
            self._seek(t_min - back)
            first = self._next_frame()
            if first is None or first[0] <= t_min + tolerance_s or t_min - back <= 0:
                return [] if first is None else [first]
            back = max(1.0, 2 * back)

    def _decode_range(self, t_min: float, t_max: float, tolerance_s: float) -> list[tuple[float, av.VideoFrame]]:
        candidates = (
            list(self._recent) if self._can_continue(t_min, tolerance_s) else self._seek_before(t_min, tolerance_s)
        )
        # Decode until a frame at or past t_max (so the closest is known) or EOF. A frame
        # within tolerance of t_max already is the closest (frames lie 1/fps apart):
        # stopping there saves decoding the next frame whenever t_max was rounded up
        # (timestamps are float32 in parquet).
        while not candidates or candidates[-1][0] < t_max - tolerance_s:
            item = self._next_frame()
            if item is None:
                break
            candidates.append(item)
        return candidates


class _RgbConverter:
    """Converts one stream's decoded frames to RGB (as ``rgb24``, see the module doc)."""

    dtype: np.dtype[Any] = np.dtype(np.uint8)

    def __init__(self, name: str, height: int, width: int) -> None:
        self.name, self.height, self.width = name, height, width
        # One reformatter, single-threaded: to_ndarray builds a scaler per frame with its
        # own slice threads, created and joined every time (~100x slower for one frame,
        # far worse on a loaded machine).
        self._reformatter = VideoReformatter()

    def shape(self, channels_first: bool) -> tuple[int, int, int]:
        return (3, self.height, self.width) if channels_first else (self.height, self.width, 3)

    def _reformat(self, frame: av.VideoFrame, format: str) -> av.VideoFrame:  # noqa: A002 - PyAV's keyword
        """``frame`` in pixel ``format``, single-threaded where PyAV lets us choose (PyAV 15
        has no ``threads`` argument)."""
        if _REFORMAT_THREADS:
            return self._reformatter.reformat(frame, format=format, threads=1)
        return self._reformatter.reformat(frame, format=format)

    def _check_size(self, frame: av.VideoFrame) -> None:
        if (frame.height, frame.width) != (self.height, self.width):
            raise VideoError(
                f"{self.name}: a frame of {frame.width}x{frame.height} in a stream of "
                f"{self.width}x{self.height}; the video changes size mid-stream. {_HINT}"
            )

    def convert(self, frame: av.VideoFrame, t: float, out: np.ndarray, channels_first: bool) -> None:
        """Write ``frame`` (at ``t`` s) as RGB into ``out`` ([H, W, 3], or [3, H, W] if
        ``channels_first``; callers guarantee the shape)."""
        self._check_size(frame)
        with wrap_av_errors(self.name, lambda: f"converting frame t={t:.6f}s", _HINT):
            if channels_first and frame.format.name in PLANAR_FORMATS and frame.width % _PLANAR_WIDTH_MULTIPLE == 0:
                planar = self._reformat(frame, "gbrp")
                h, w = planar.height, planar.width
                for channel, plane in zip((1, 2, 0), planar.planes, strict=True):  # gbrp: G, B, R planes
                    rows = np.frombuffer(memoryview(plane), np.uint8, count=h * plane.line_size).reshape(
                        h, plane.line_size
                    )
                    out[channel] = rows[:, :w]
                return
            rgb = self._reformat(frame, "rgb24").to_ndarray()
        out[...] = rgb.transpose(2, 0, 1) if channels_first else rgb


class _DepthConverter(_RgbConverter):
    """Converts a depth stream's frames to their 12-bit codes (``gray12le``), as lerobot does."""

    dtype = np.dtype(np.uint16)

    def shape(self, channels_first: bool) -> tuple[int, int, int]:
        return (1, self.height, self.width) if channels_first else (self.height, self.width, 1)

    def convert(self, frame: av.VideoFrame, t: float, out: np.ndarray, channels_first: bool) -> None:
        self._check_size(frame)
        with wrap_av_errors(self.name, lambda: f"converting depth frame t={t:.6f}s", _HINT):
            codes = self._reformat(frame, "gray12le").to_ndarray()
        out.reshape(self.height, self.width)[...] = codes


class _Compact:
    """A 4:2:0 frame copied out of the decoder: its planes packed as ``to_ndarray`` packs
    them, and the metadata the RGB conversion depends on."""

    __slots__ = ("color_range", "colorspace", "planes")

    #: Pixel formats held compact (others keep the decoder's frame).
    FORMATS = frozenset({"yuv420p"})

    def __init__(self, frame: av.VideoFrame) -> None:
        h, w = frame.height, frame.width
        self.planes = np.empty((h * 3 // 2, w), np.uint8)  # Y rows, then U and V (h/4 rows of w each)
        targets = (self.planes[:h], self.planes[h : h + h // 4], self.planes[h + h // 4 :])
        for plane, target, (rows, cols) in zip(
            frame.planes, targets, ((h, w), (h // 2, w // 2), (h // 2, w // 2)), strict=True
        ):
            source = np.frombuffer(memoryview(plane), np.uint8, count=rows * plane.line_size).reshape(
                rows, plane.line_size
            )
            target.reshape(rows, cols)[...] = source[:, :cols]  # (to_ndarray's layout, half its cost)
        self.colorspace, self.color_range = frame.colorspace, frame.color_range

    @classmethod
    def of(cls, frame: _Compact | av.VideoFrame) -> _Compact | av.VideoFrame:
        if (
            isinstance(frame, av.VideoFrame)
            and frame.format.name in cls.FORMATS
            and frame.width % 2 == 0
            and frame.height % 4 == 0
        ):
            return cls(frame)
        return frame

    def frame(self) -> av.VideoFrame:
        frame = av.VideoFrame.from_numpy_buffer(self.planes, format="yuv420p")
        frame.colorspace, frame.color_range = self.colorspace, self.color_range
        return frame


class DecodedFrames:
    """Decoded video frames picked for a query, converted to RGB only when written out.

    Returned by :meth:`VideoReader.decoded_at`. 4:2:0 frames are held as packed copies
    of their planes: a decoder's frame would keep the decoder's buffer pool (and, after
    the reader closed, its internal memory) alive, measured ~0.8 MB per held 240x320
    AV1 frame in a stream against 115 KB copied. Other pixel formats keep the decoder's
    frame (FFmpeg reference-counts its buffers, which stay valid after the reader closes).
    """

    __slots__ = ("_frames", "_rgb", "_single", "_times")

    def __init__(
        self,
        frames: Sequence[_Compact | av.VideoFrame],
        times: list[float],
        rgb: _RgbConverter,
        single: bool = False,
        compact: bool = False,
    ) -> None:
        if compact:  # one copy per distinct frame (a delta window may repeat one)
            copies: dict[int, _Compact | av.VideoFrame] = {}
            for f in frames:
                if id(f) not in copies:
                    copies[id(f)] = _Compact.of(f)
            frames = [copies[id(f)] for f in frames]
        self._frames = frames
        self._times, self._rgb, self._single = times, rgb, single

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def shape(self) -> tuple[int, ...]:
        """The channels-first shape :meth:`write` fills: [T, 3, H, W] ([3, H, W] for :meth:`first`)."""
        return self.shape_for(True)

    def shape_for(self, channels_first: bool) -> tuple[int, ...]:
        frame = self._rgb.shape(channels_first)
        return frame if self._single else (len(self._frames), *frame)

    def first(self) -> DecodedFrames:
        """The first frame alone, written as [3, H, W]."""
        return DecodedFrames(self._frames[:1], self._times[:1], self._rgb, single=True)

    def write(self, out: np.ndarray, channels_first: bool = True) -> np.ndarray:
        """Convert the frames to RGB into ``out`` (uint8 of :meth:`shape_for`); returns it."""
        if self._single:
            self._convert(0, out, channels_first)
            return out
        done: dict[int, int] = {}  # id(frame) -> row of out that holds it
        for i, frame in enumerate(self._frames):
            row = done.get(id(frame))
            if row is not None:
                out[i] = out[row]
                continue
            self._convert(i, out[i], channels_first)
            done[id(frame)] = i
        return out

    def to_array(self) -> np.ndarray:
        """The frames as a new uint8 channels-first array."""
        return self.write(np.empty(self.shape, dtype=self._rgb.dtype))

    def _convert(self, i: int, out: np.ndarray, channels_first: bool) -> None:
        held = self._frames[i]
        frame = held.frame() if isinstance(held, _Compact) else held
        self._rgb.convert(frame, self._times[i], out, channels_first)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode PNG (or any Pillow-readable) bytes of an ``image`` feature to uint8 [H, W, 3].

    Grayscale/alpha images are converted to RGB, as lerobot's loader does.

    Raises:
        CorruptDataset: the bytes are not a readable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            rgb = img if img.mode == "RGB" else img.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise CorruptDataset(
            f"{name}: cannot decode image bytes ({len(data)} bytes): {exc}. "
            "The parquet file may be corrupt: re-download it"
        ) from exc
