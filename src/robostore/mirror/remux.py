"""Cut episodes out of an mp4 by stream copy (no re-encoding), with PyAV.

lerobot encodes each episode separately and concatenates them into one file, so every
episode starts on a keyframe: its packets can be copied as they are and re-timed by a
constant offset. A span that does not start on a keyframe cannot be cut this way and
raises :class:`VideoError` rather than producing frames that do not decode.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from robostore.errors import RobostoreError, VideoError
from robostore.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Span:
    """Keep the packets in ``[start, end)`` seconds of the input and place them at ``dest`` seconds."""

    start: float
    end: float
    dest: float


def cut(store: Store, path: str, spans: Sequence[Span], out_path: str) -> None:
    """Write the ``spans`` of ``path`` (on ``store``) back to back into the local mp4 ``out_path``."""
    import av

    where = store.describe(path)
    try:
        with store.open(path) as fh, av.open(fh, "r") as src, av.open(out_path, "w", format="mp4") as out:
            if not src.streams.video:
                raise VideoError(f"{where}: no video stream")
            istream = src.streams.video[0]
            tb = istream.time_base
            if tb is None:
                raise VideoError(f"{where}: the video stream has no time base")
            ostream = out.add_stream_from_template(istream, opaque=True)
            ostream.time_base = tb
            bounds = [(round(s.start / tb), round(s.end / tb), round(s.dest / tb)) for s in spans]
            seen_first = [False] * len(bounds)
            for packet in src.demux(istream):
                if packet.pts is None or not packet.size:
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
                out.mux(packet)
            missing = [spans[i] for i, seen in enumerate(seen_first) if not seen]
            if missing:
                raise VideoError(f"{where}: no frames between {missing[0].start:.4f} s and {missing[0].end:.4f} s")
    except RobostoreError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{where}: cannot cut the video by stream copy: {exc}") from exc
