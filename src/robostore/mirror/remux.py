"""Cut episodes out of an mp4 by stream copy (no re-encoding), with PyAV.

lerobot encodes each episode separately and concatenates them into one file, so every
episode starts on a keyframe: its packets can be copied as they are and re-timed by a
constant offset. A span that does not start on a keyframe cannot be cut this way and
raises :class:`VideoError` rather than producing frames that do not decode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Any

from robostore.errors import RobostoreError, VideoError
from robostore.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Span:
    """Keep the packets in ``[start, end)`` seconds of the input and place them at ``dest`` seconds."""

    start: float
    end: float
    dest: float


#: Largest stretch of an mp4 :func:`cut` reads in one request (it is held in memory).
MAX_WINDOW = 64 * 2**20


class _WindowedFile:
    """A read-only file object that answers reads inside one prefetched window from
    memory and every other read from the underlying file."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.pos = 0
        self.window_start = 0
        self.window = b""

    def prefetch(self, start: int, data: bytes) -> None:
        self.window_start, self.window = start, data

    def read(self, n: int = -1) -> bytes:
        offset = self.pos - self.window_start
        if self.window and 0 <= offset < len(self.window):
            out = self.window[offset : len(self.window) if n < 0 else offset + n]
        else:
            self.raw.seek(self.pos)
            out = self.raw.read(n)
        self.pos += len(out)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 2:
            self.pos = self.raw.seek(offset, 2)
        else:
            self.pos = offset if whence == 0 else self.pos + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def _packet_window(index: Sequence[object], first: int, last_end: int) -> tuple[int, int, int] | None:
    """``(lo, hi, packets)``: the byte range and number of the packets from the keyframe at
    or before ``first`` to ``last_end`` (stream time base), from the container's index;
    None when it has none."""
    entries = [e for e in index if e.size > 0]  # type: ignore[attr-defined]
    if not entries:
        return None
    start_ts = max((e.timestamp for e in entries if e.is_keyframe and e.timestamp <= first), default=None)  # type: ignore[attr-defined]
    if start_ts is None:
        return None
    used = [e for e in entries if start_ts <= e.timestamp < last_end]  # type: ignore[attr-defined]
    if not used:
        return None
    return min(e.pos for e in used), max(e.pos + e.size for e in used), len(used)  # type: ignore[attr-defined]


def cut(
    store: Store, path: str, spans: Sequence[Span], out: str | IO[bytes], *, block_size: int | None = None
) -> None:
    """Write the ``spans`` of ``path`` (on ``store``) back to back into the mp4 ``out``.

    ``out`` is a local file path or a seekable binary file object. The input's header and
    index are read in ranged reads of ``block_size`` bytes on remote stores (see
    :meth:`Store.open`); then the packets from the keyframe before the earliest span to
    the end of the latest one, found in the index, in one ranged read (up to
    :data:`MAX_WINDOW` bytes; block by block beyond that).
    """
    import av

    where = store.describe(path)
    try:
        with store.open(path, block_size) as raw:
            fh = _WindowedFile(raw)
            # A small I/O buffer: the demuxer reads no further ahead than it needs.
            with av.open(fh, "r", buffer_size=8192) as src, av.open(out, "w", format="mp4") as dst:
                _cut(store, path, src, dst, spans, fh)
    except RobostoreError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{where}: cannot cut the video by stream copy: {exc}") from exc


def _demux(src: Any, stream: Any, last_end: int, packets: int | None) -> Iterator[Any]:
    """The packets from the seek point until dts ``last_end``, or until the ``packets``-th
    (then nothing more is read: demuxing on would read past the prefetched window)."""
    for packet in src.demux(stream):
        if packet.dts is not None and packet.dts >= last_end:
            return  # demux order is dts order and dts <= pts: no later packet is in a span
        if not packet.size:
            continue
        yield packet
        if packets is not None:
            packets -= 1
            if packets == 0:
                return


def _cut(store: Store, path: str, src: Any, dst: Any, spans: Sequence[Span], fh: _WindowedFile) -> None:
    where = store.describe(path)
    if not src.streams.video:
        raise VideoError(f"{where}: no video stream")
    istream = src.streams.video[0]
    tb: Fraction = istream.time_base
    ostream = dst.add_stream_from_template(istream, opaque=True)
    ostream.time_base = tb
    bounds = [(round(s.start / tb), round(s.end / tb), round(s.dest / tb)) for s in spans]
    seen_first = [False] * len(bounds)
    last_end = max((b for _, b, _ in bounds), default=0)
    packets = None  # how many the index says there are from the seek point to last_end
    if bounds:
        first = min(a for a, _, _ in bounds)
        window = _packet_window(istream.index_entries, first, last_end)
        if window is not None and window[1] - window[0] <= MAX_WINDOW:
            lo, hi, packets = window
            fh.prefetch(lo, store.read_range(path, lo, hi))
        src.seek(first, stream=istream, backward=True, any_frame=False)
    for packet in _demux(src, istream, last_end, packets):
        if packet.pts is None:
            continue
        slot = next((i for i, (a, b, _) in enumerate(bounds) if a <= packet.pts < b), None)
        if slot is None:
            continue
        start, _, dest = bounds[slot]
        if not seen_first[slot]:
            if not packet.is_keyframe:
                raise VideoError(
                    f"{where}: the episode at {spans[slot].start:.4f} s does not start on a keyframe; "
                    "it cannot be cut by stream copy (re-encode the dataset first)"
                )
            seen_first[slot] = True
        shift = dest - start
        packet.pts += shift
        if packet.dts is not None:
            packet.dts += shift
        packet.stream = ostream
        dst.mux(packet)
    missing = [spans[i] for i, seen in enumerate(seen_first) if not seen]
    if missing:
        raise VideoError(f"{where}: no frames between {missing[0].start:.4f} s and {missing[0].end:.4f} s")
