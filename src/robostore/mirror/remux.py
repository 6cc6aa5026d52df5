"""Cut and join episodes of mp4 files by stream copy (no re-encoding), with PyAV.

lerobot encodes each episode separately (and, in v3.0, concatenates them into one
file), so every episode starts on a keyframe: its packets can be copied as they are and
re-timed by a constant offset. A span that does not start on a keyframe cannot be cut
this way and raises :class:`VideoError` rather than producing frames that do not decode.

Inputs are read through their :class:`~robostore.store.Store` (ranged reads on remote
backends): the header and index, then, when only spans of a file are wanted, just the
packets from the keyframe before the first span to the end of the last, found in the
file's index, in one ranged read (up to :data:`MAX_WINDOW` bytes, the only part held in
memory). The output is a local file or a seekable file object.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Any

from robostore.errors import RobostoreError, VideoError
from robostore.mirror.mp4join import NotJoinable, join_bytes
from robostore.store import Store

log = logging.getLogger(__name__)
#: Largest stretch of an mp4 read in one request for its spans (it is held in memory).
MAX_WINDOW = 64 * 2**20


@dataclass(frozen=True, slots=True)
class Span:
    """Keep the packets in ``[start, end)`` seconds of the input and place them at ``dest`` seconds."""

    start: float
    end: float
    dest: float


@dataclass(frozen=True, slots=True)
class Piece:
    """The ``spans`` of the mp4 ``path`` on ``store``; ``spans=None`` with ``dest``: the
    whole file, every packet, moved to start at ``dest`` seconds."""

    store: Store
    path: str
    spans: Sequence[Span] | None = None
    dest: float = 0.0


def cut(store: Store, path: str, spans: Sequence[Span], out: str | IO[bytes], *, block_size: int | None = None) -> None:
    """Write the ``spans`` of ``path`` (on ``store``) back to back into the mp4 ``out``
    (a local path or a seekable binary file object); ``block_size``: see :func:`join`."""
    join([Piece(store, path, spans)], out, block_size=block_size)


def join(pieces: Sequence[Piece], out: str | IO[bytes], *, block_size: int | None = None) -> None:
    """Write ``pieces`` (in order) into the mp4 ``out`` by stream copy.

    Whole files in FFmpeg's plain layout written to a local path are joined by copying
    their media data in large blocks (:mod:`robostore.mirror.mp4join`); anything else
    packet by packet. The output takes the first input's stream parameters and time base;
    every later input must hold the same codec and frame size (else :class:`VideoError`).
    Inputs' headers and indexes are read in ranged reads of ``block_size`` bytes on remote stores
    (the store's default when None, see :meth:`Store.open`).
    """
    import av

    if not pieces:
        raise VideoError(f"{out}: nothing to write (no input videos)")
    if isinstance(out, str) and all(p.spans is None for p in pieces):
        try:
            join_bytes([(p.store, p.path, p.dest) for p in pieces], out)
            return
        except NotJoinable as exc:
            log.debug("%s: joining packet by packet (%s)", out, exc)
        except (OSError, ValueError, struct.error) as exc:
            log.debug("%s: joining packet by packet (%s)", out, exc)
    with av.open(out, "w", format="mp4") as dst:
        ostream: Any = None
        for piece in pieces:
            where = piece.store.describe(piece.path)
            try:
                with piece.store.open(piece.path, block_size) as raw:
                    fh = _WindowedFile(raw)
                    # A small I/O buffer: the demuxer reads no further ahead than it needs.
                    with av.open(fh, "r", buffer_size=8192) as src:
                        if not src.streams.video:
                            raise VideoError(f"{where}: no video stream")
                        istream = src.streams.video[0]
                        if ostream is None:
                            ostream = dst.add_stream_from_template(istream, opaque=True)
                            ostream.time_base = istream.time_base
                        else:
                            _check_same(istream, ostream, where)
                        _copy_packets(src, istream, ostream, dst, piece, where, fh)
            except RobostoreError:
                raise
            except (av.FFmpegError, OSError, ValueError) as exc:
                raise VideoError(f"{where}: cannot copy the video by stream copy: {exc}") from exc


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


def _packet_window(index: Sequence[Any], first: int, last_end: int) -> tuple[int, int, int] | None:
    """``(lo, hi, packets)``: the byte range and number of the packets from the keyframe at
    or before ``first`` to ``last_end`` (stream time base), from the container's index;
    None when it has none."""
    entries = [e for e in index if e.size > 0]
    start_ts = max((e.timestamp for e in entries if e.is_keyframe and e.timestamp <= first), default=None)
    if start_ts is None:
        return None
    used = [e for e in entries if start_ts <= e.timestamp < last_end]
    if not used:
        return None
    return min(e.pos for e in used), max(e.pos + e.size for e in used), len(used)


def _demux(src: Any, istream: Any, piece: Piece, fh: _WindowedFile | None) -> Iterator[Any]:
    """The packets of the input that may fall in the piece's spans (every packet when it
    has none): from the keyframe before the first span (prefetched in one read when ``src``
    reads ``fh``) to the last span's end (nothing past it is read)."""
    if piece.spans is None or not piece.spans:
        yield from (p for p in src.demux(istream) if p.size)
        return
    tb: Fraction = istream.time_base
    first = min(round(s.start / tb) for s in piece.spans)
    last_end = max(round(s.end / tb) for s in piece.spans)
    packets = None  # how many the index says there are from the seek point to last_end
    window = _packet_window(istream.index_entries, first, last_end) if fh is not None else None
    if fh is not None and window is not None and window[1] - window[0] <= MAX_WINDOW:
        lo, hi, packets = window
        fh.prefetch(lo, piece.store.read_range(piece.path, lo, hi))
    src.seek(first, stream=istream, backward=True, any_frame=False)
    for packet in src.demux(istream):
        if packet.dts is not None and packet.dts >= last_end:
            return  # demux order is dts order and dts <= pts: no later packet is in a span
        if not packet.size:
            continue
        yield packet
        if packets is not None:
            packets -= 1
            if packets == 0:
                return  # demuxing on would read past the prefetched window


def _check_same(istream: Any, ostream: Any, where: str) -> None:
    a, b = istream.codec_context, ostream.codec_context
    if (a.codec.canonical_name, a.width, a.height) != (b.codec.canonical_name, b.width, b.height):
        raise VideoError(
            f"{where}: holds {a.codec.canonical_name} {a.width}x{a.height} but the file it joins holds "
            f"{b.codec.canonical_name} {b.width}x{b.height}; videos of one camera must share codec and size"
        )


def _copy_packets(
    src: Any, istream: Any, ostream: Any, out: Any, piece: Piece, where: str, fh: _WindowedFile | None = None
) -> None:
    # Times stay in the input's time base; PyAV rebases each packet to the output stream's.
    tb: Fraction = istream.time_base
    if piece.spans is None:
        bounds = [(-math.inf, math.inf, round(piece.dest / tb))]
    else:
        bounds = [
            (round(s.start / tb), round(s.end / tb), round(s.dest / tb) - round(s.start / tb)) for s in piece.spans
        ]
    seen_first = [False] * len(bounds)
    for packet in _demux(src, istream, piece, fh):
        if packet.pts is None:
            continue
        slot = next((i for i, (a, b, _) in enumerate(bounds) if a <= packet.pts < b), None)
        if slot is None:
            continue
        shift = bounds[slot][2]
        if not seen_first[slot]:
            if not packet.is_keyframe:
                start = piece.spans[slot].start if piece.spans is not None else 0.0
                raise VideoError(
                    f"{where}: the episode at {start:.4f} s does not start on a keyframe; "
                    "it cannot be cut by stream copy (re-encode the dataset first)"
                )
            seen_first[slot] = True
        packet.pts += shift
        if packet.dts is not None:
            packet.dts += shift
        packet.stream = ostream
        out.mux(packet)
    missing = [i for i, seen in enumerate(seen_first) if not seen]
    if missing:
        if piece.spans is None:
            raise VideoError(f"{where}: the video holds no frames")
        span = piece.spans[missing[0]]
        raise VideoError(f"{where}: no frames between {span.start:.4f} s and {span.end:.4f} s")
