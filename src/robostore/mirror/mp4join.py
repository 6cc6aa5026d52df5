"""Join whole single-track mp4 files by copying bytes: the fast path of :func:`remux.join`.

Each input's media data (its one ``mdat``) is copied in large blocks, never parsed
packet by packet; one ``moov`` is built from the first input's with the sample tables
of all inputs merged (sample sizes, durations, sync samples, chunk offsets moved to
where the data landed) and the durations summed. Input *k*'s first frame therefore
sits at the sum of the media durations before it — where lerobot's converter says it
is. The bytes of every frame are untouched (a stream copy, like the packet path).

Only the layout FFmpeg (and so lerobot and robostore) writes is taken: one video track,
one ``mdat``, identical sample descriptions (codec configuration) and time scales, no
composition offsets (B-frames), at most one edit starting at media time 0. Anything
else raises :class:`NotJoinable` and the caller falls back to the packet path.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import IO

import numpy as np

from robostore.store import Store

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}
_TABLES = {b"stsd", b"stts", b"stss", b"stsc", b"stsz", b"stco", b"co64"}
#: A moov larger than this is not read (info.json and mp4s come from strangers).
MAX_MOOV = 64 << 20
BLOCK = 8 << 20


class NotJoinable(Exception):  # noqa: N818 - a signal to take the packet path, not an error
    """The inputs are not in the simple layout this module joins; use the packet path."""


@dataclass
class _Box:
    kind: bytes
    payload: bytes = b""
    children: list[_Box] = field(default_factory=list)

    def find(self, kind: bytes) -> _Box:
        found = [c for c in self.children if c.kind == kind]
        if len(found) != 1:
            raise NotJoinable(f"expected one {kind.decode()} box, found {len(found)}")
        return found[0]

    def encode(self) -> bytes:
        body = b"".join(c.encode() for c in self.children) if self.kind in _CONTAINERS else self.payload
        return struct.pack(">I4s", 8 + len(body), self.kind) + body


def _parse(data: bytes, kind: bytes = b"root") -> _Box:
    box = _Box(kind)
    off = 0
    while off < len(data):
        if off + 8 > len(data):
            raise NotJoinable("truncated box header")
        size, child = struct.unpack(">I4s", data[off : off + 8])
        head = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[off + 8 : off + 16])
            head = 16
        elif size == 0:
            size = len(data) - off
        if size < head or off + size > len(data):
            raise NotJoinable(f"box {child!r} runs past its parent")
        body = data[off + head : off + size]
        box.children.append(_parse(body, child) if child in _CONTAINERS else _Box(child, body))
        off += size
    return box


@dataclass
class _Input:
    ftyp: bytes
    moov: _Box
    payload_start: int
    payload_size: int


def _top_level(fh: IO[bytes], where: str) -> _Input:
    ftyp = moov = None
    mdat: tuple[int, int] | None = None
    fh.seek(0, 2)
    end = fh.tell()
    off = 0
    while off < end:
        fh.seek(off)
        head = fh.read(16)
        if len(head) < 8:
            raise NotJoinable(f"{where}: truncated")
        size, kind = struct.unpack(">I4s", head[:8])
        hdr = 8
        if size == 1:
            (size,) = struct.unpack(">Q", head[8:16])
            hdr = 16
        elif size == 0:
            size = end - off
        if size < hdr:
            raise NotJoinable(f"{where}: bad box size")
        if kind == b"mdat":
            if mdat is not None:
                raise NotJoinable(f"{where}: more than one mdat")
            mdat = (off + hdr, size - hdr)
        elif kind in (b"ftyp", b"moov"):
            if size > MAX_MOOV:
                raise NotJoinable(f"{where}: {kind.decode()} of {size} bytes")
            fh.seek(off)
            raw = fh.read(size)
            if kind == b"ftyp":
                ftyp = raw
            else:
                moov = _parse(raw[hdr:], b"moov")
        off += size
    if ftyp is None or moov is None or mdat is None:
        raise NotJoinable(f"{where}: lacks ftyp, moov or mdat")
    return _Input(ftyp, moov, *mdat)


def _full(payload: bytes) -> tuple[int, bytes]:
    """``(version, rest)`` of a full box's payload."""
    return payload[0], payload[4:]


def _count_table(payload: bytes, fmt: str, width: int) -> np.ndarray:
    (n,) = struct.unpack(">I", payload[4:8])
    body = payload[8 : 8 + n * width]
    if len(body) != n * width:
        raise NotJoinable("truncated sample table")
    return np.frombuffer(body, dtype=np.dtype(fmt)).reshape(n, -1) if n else np.zeros((0, width // 4), np.dtype(fmt))


@dataclass
class _Track:
    stsd: bytes
    timescale: int
    stts: np.ndarray  # [n, 2] count, delta
    stss: np.ndarray | None  # 1-based sync sample numbers, None: every sample is sync
    stsc: np.ndarray  # [n, 3] first_chunk, samples_per_chunk, description
    sizes: np.ndarray  # per-sample sizes
    offsets: np.ndarray  # chunk offsets (absolute in the input)

    @property
    def samples(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def duration(self) -> int:
        return int((self.stts[:, 0].astype(np.int64) * self.stts[:, 1]).sum())


def _track(inp: _Input) -> tuple[_Track, _Box]:
    traks = [c for c in inp.moov.children if c.kind == b"trak"]
    if len(traks) != 1:
        raise NotJoinable(f"{len(traks)} tracks")
    trak = traks[0]
    mdia = trak.find(b"mdia")
    if mdia.find(b"hdlr").payload[8:12] != b"vide":
        raise NotJoinable("not a video track")
    edts = [c for c in trak.children if c.kind == b"edts"]
    if edts:
        version, rest = _full(edts[0].find(b"elst").payload)
        (n,) = struct.unpack(">I", rest[:4])
        media_time = struct.unpack(">i" if version == 0 else ">q", rest[8:12] if version == 0 else rest[12:20])[0]
        if n != 1 or media_time != 0:
            raise NotJoinable("an edit list that moves the media")
    version, rest = _full(mdia.find(b"mdhd").payload)
    timescale = struct.unpack(">I", rest[8:12] if version == 0 else rest[16:20])[0]
    stbl = mdia.find(b"minf").find(b"stbl")
    kinds = {c.kind for c in stbl.children}
    if not kinds <= _TABLES:
        raise NotJoinable(f"sample tables {sorted(k.decode() for k in kinds - _TABLES)}")
    stts = _count_table(stbl.find(b"stts").payload, ">u4", 8).astype(np.int64)
    stss = _count_table(stbl.find(b"stss").payload, ">u4", 4)[:, 0].astype(np.int64) if b"stss" in kinds else None
    stsc = _count_table(stbl.find(b"stsc").payload, ">u4", 12).astype(np.int64)
    stsz = stbl.find(b"stsz").payload
    size, count = struct.unpack(">II", stsz[4:12])
    if size:
        sizes = np.full(count, size, np.int64)
    else:
        sizes = np.frombuffer(stsz[12 : 12 + 4 * count], dtype=">u4").astype(np.int64)
        if len(sizes) != count:
            raise NotJoinable("truncated stsz")
    if b"co64" in kinds:
        offsets = _count_table(stbl.find(b"co64").payload, ">u8", 8)[:, 0].astype(np.int64)
    else:
        offsets = _count_table(stbl.find(b"stco").payload, ">u4", 4)[:, 0].astype(np.int64)
    if int(stts[:, 0].sum()) != count:
        raise NotJoinable("stts and stsz disagree")
    stsd = stbl.find(b"stsd").payload
    return _Track(stsd, timescale, stts, stss, stsc, sizes, offsets), trak


def _codec(stsd: bytes) -> bytes:
    """The sample description without its ``btrt`` (bit rate) box, which differs from file
    to file and says nothing about how to decode."""
    (count,) = struct.unpack(">I", stsd[4:8])
    if count != 1:
        raise NotJoinable(f"{count} sample descriptions")
    entry = _parse(stsd[8:]).children
    if len(entry) != 1 or len(entry[0].payload) < 78:
        raise NotJoinable("unexpected sample description")
    fields, boxes = entry[0].payload[:78], _parse(entry[0].payload[78:]).children
    return entry[0].kind + fields + b"".join(b.encode() for b in boxes if b.kind != b"btrt")


def media_seconds(fh: IO[bytes], where: str) -> float:
    """The video track's duration in seconds from its ``mdhd`` box, as FFmpeg reports the
    stream duration for this layout (lerobot's ``get_video_duration_in_s``); reads the
    box headers and the ``moov`` only. Raises :class:`NotJoinable` for other layouts."""
    inp = _top_level(fh, where)
    _track(inp)
    trak = next(c for c in inp.moov.children if c.kind == b"trak")
    version, rest = _full(trak.find(b"mdia").find(b"mdhd").payload)
    timescale, duration = struct.unpack(">II", rest[8:16]) if version == 0 else struct.unpack(">IQ", rest[16:28])
    if not timescale:
        raise NotJoinable(f"{where}: time scale 0")
    return float(Fraction(duration, timescale))


def _table(entries: np.ndarray, fmt: str) -> bytes:
    return struct.pack(">II", 0, len(entries)) + np.ascontiguousarray(entries, dtype=np.dtype(fmt)).tobytes()


def _set_duration(box: _Box, offset_v0: int, offset_v1: int, value: int) -> None:
    version = box.payload[0]
    at, fmt = (offset_v0, ">I") if version == 0 else (offset_v1, ">Q")
    if version == 0 and value > 0xFFFFFFFF:
        raise NotJoinable("duration too long for a version-0 header")
    box.payload = box.payload[:at] + struct.pack(fmt, value) + box.payload[at + struct.calcsize(fmt) :]


def join_bytes(pieces: Sequence[tuple[Store, str, float]], out_path: str) -> None:
    """Join whole files ``(store, path, dest seconds)`` into the local mp4 ``out_path``.

    Raises :class:`NotJoinable` (before writing anything useful) when the inputs are not
    in the simple layout, or a ``dest`` is not the sum of the media durations before it.
    """
    inputs, tracks = [], []
    for store, path, _ in pieces:
        with store.open(path) as fh:
            inp = _top_level(fh, store.describe(path))
        track, _ = _track(inp)
        inputs.append(inp)
        tracks.append(track)
    first = tracks[0]
    if any(_codec(t.stsd) != _codec(first.stsd) or t.timescale != first.timescale for t in tracks):
        raise NotJoinable("the inputs differ in codec configuration or time scale")
    at = 0
    for (_, _, dest), track in zip(pieces, tracks, strict=True):
        if abs(dest * first.timescale - at) > 0.5:
            raise NotJoinable("a piece is not placed right after the previous one")
        at += track.duration

    header_ftyp = inputs[0].ftyp
    payload = sum(i.payload_size for i in inputs)
    large = payload + 8 > 0xFFFFFFFF
    start = len(header_ftyp) + (16 if large else 8)
    offsets, stsc, sync, sizes, stts = [], [], [], [], []
    shift = chunks = samples = 0
    for inp, track in zip(inputs, tracks, strict=True):
        rel = track.offsets - inp.payload_start
        if len(rel) and (rel.min() < 0 or rel.max() >= max(inp.payload_size, 1)):
            raise NotJoinable("chunk offsets outside the mdat")
        offsets.append(rel + start + shift)
        entries = track.stsc.copy()
        entries[:, 0] += chunks
        stsc.append(entries)
        sync.append((track.stss if track.stss is not None else np.arange(1, track.samples + 1)) + samples)
        sizes.append(track.sizes)
        stts.append(track.stts)
        shift += inp.payload_size
        chunks += len(track.offsets)
        samples += track.samples
    all_offsets = np.concatenate(offsets)
    stts_all = np.concatenate(stts)
    duration = int((stts_all[:, 0] * stts_all[:, 1]).sum())

    moov = inputs[0].moov
    trak = next(c for c in moov.children if c.kind == b"trak")
    mdia = trak.find(b"mdia")
    stbl = mdia.find(b"minf").find(b"stbl")
    tables = {
        b"stts": _table(stts_all, ">u4"),
        b"stsc": _table(np.concatenate(stsc), ">u4"),
        b"stsz": struct.pack(">III", 0, 0, samples) + np.concatenate(sizes).astype(">u4").tobytes(),
    }
    if all(t.stss is None for t in tracks):
        stbl.children = [c for c in stbl.children if c.kind != b"stss"]
    else:
        tables[b"stss"] = _table(np.concatenate(sync), ">u4")
        if b"stss" not in {c.kind for c in stbl.children}:
            stbl.children.append(_Box(b"stss"))
    wide = bool(len(all_offsets)) and int(all_offsets.max()) > 0xFFFFFFFF
    offset_kind = b"co64" if wide else b"stco"
    tables[offset_kind] = _table(all_offsets, ">u8" if wide else ">u4")
    stbl.children = [c for c in stbl.children if c.kind not in (b"stco", b"co64")] + [_Box(offset_kind)]
    for child in stbl.children:
        if child.kind in tables:
            child.payload = tables[child.kind]
    # mdhd / mvhd / tkhd / elst durations (full-box offsets for versions 0 and 1)
    _set_duration(mdia.find(b"mdhd"), 16, 24, duration)
    mvhd = moov.find(b"mvhd")
    movie_scale = struct.unpack(">I", mvhd.payload[12:16] if mvhd.payload[0] == 0 else mvhd.payload[20:24])[0]
    movie_duration = round(duration * movie_scale / first.timescale)
    _set_duration(mvhd, 16, 24, movie_duration)
    _set_duration(trak.find(b"tkhd"), 20, 28, movie_duration)
    for edts in (c for c in trak.children if c.kind == b"edts"):
        elst = edts.find(b"elst")
        _set_duration(elst, 8, 8, movie_duration)

    with open(out_path, "wb") as out:
        out.write(header_ftyp)
        out.write(
            struct.pack(">I4sQ", 1, b"mdat", payload + 16) if large else struct.pack(">I4s", payload + 8, b"mdat")
        )
        for (store, path, _), inp in zip(pieces, inputs, strict=True):
            with store.open(path) as fh:
                fh.seek(inp.payload_start)
                left = inp.payload_size
                while left:
                    block = fh.read(min(BLOCK, left))
                    if not block:
                        raise NotJoinable(f"{store.describe(path)}: shorter than its mdat box says")
                    out.write(block)
                    left -= len(block)
        out.write(moov.encode())
