"""Cut and join episodes of mp4 files by stream copy (no re-encoding), with PyAV.

lerobot encodes each episode separately (and, in v3.0, concatenates them into one
file), so every episode starts on a keyframe: its packets can be copied as they are and
re-timed by a constant offset. A span that does not start on a keyframe cannot be cut
this way and raises :class:`VideoError` rather than producing frames that do not decode.

Inputs are read through their :class:`~robostore.store.Store` as a stream (ranged reads
on remote backends), and the output is written to a local file: no whole mp4 is held in
memory.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from robostore.errors import RobostoreError, VideoError
from robostore.mirror.mp4join import NotJoinable, join_bytes
from robostore.store import Store

log = logging.getLogger(__name__)


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


def cut(store: Store, path: str, spans: Sequence[Span], out_path: str) -> None:
    """Write the ``spans`` of ``path`` (on ``store``) back to back into the local mp4 ``out_path``."""
    join([Piece(store, path, spans)], out_path)


def join(pieces: Sequence[Piece], out_path: str) -> None:
    """Write ``pieces`` (in order) into the local mp4 ``out_path`` by stream copy.

    Whole files in FFmpeg's plain layout are joined by copying their media data in
    large blocks (:mod:`robostore.mirror.mp4join`); anything else packet by packet. The
    output takes the first input's stream parameters and time base; every later input
    must hold the same codec and frame size (else :class:`VideoError`).
    """
    import av

    if not pieces:
        raise VideoError(f"{out_path}: nothing to write (no input videos)")
    if all(p.spans is None for p in pieces):
        try:
            join_bytes([(p.store, p.path, p.dest) for p in pieces], out_path)
            return
        except NotJoinable as exc:
            log.debug("%s: joining packet by packet (%s)", out_path, exc)
        except (OSError, ValueError, struct.error) as exc:
            log.debug("%s: joining packet by packet (%s)", out_path, exc)
    with av.open(out_path, "w", format="mp4") as out:
        ostream: Any = None
        for piece in pieces:
            where = piece.store.describe(piece.path)
            try:
                with piece.store.open(piece.path) as fh, av.open(fh, "r") as src:
                    if not src.streams.video:
                        raise VideoError(f"{where}: no video stream")
                    istream = src.streams.video[0]
                    if ostream is None:
                        ostream = out.add_stream_from_template(istream, opaque=True)
                        ostream.time_base = istream.time_base
                    else:
                        _check_same(istream, ostream, where)
                    _copy_packets(src, istream, ostream, out, piece, where)
            except RobostoreError:
                raise
            except (av.FFmpegError, OSError, ValueError) as exc:
                raise VideoError(f"{where}: cannot copy the video by stream copy: {exc}") from exc


def _check_same(istream: Any, ostream: Any, where: str) -> None:
    a, b = istream.codec_context, ostream.codec_context
    if (a.codec.canonical_name, a.width, a.height) != (b.codec.canonical_name, b.width, b.height):
        raise VideoError(
            f"{where}: holds {a.codec.canonical_name} {a.width}x{a.height} but the file it joins holds "
            f"{b.codec.canonical_name} {b.width}x{b.height}; videos of one camera must share codec and size"
        )


def _copy_packets(src: Any, istream: Any, ostream: Any, out: Any, piece: Piece, where: str) -> None:
    # Times stay in the input's time base; PyAV rebases each packet to the output stream's.
    tb: Fraction = istream.time_base
    if piece.spans is None:
        bounds = [(-math.inf, math.inf, round(piece.dest / tb))]
    else:
        bounds = [(round(s.start / tb), round(s.end / tb), round(s.dest / tb) - round(s.start / tb)) for s in piece.spans]
    seen_first = [False] * len(bounds)
    for packet in src.demux(istream):
        if packet.pts is None or not packet.size:
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
