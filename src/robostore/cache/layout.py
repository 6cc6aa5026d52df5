"""The on-store layout of the frame cache: Zarr v3 arrays of decoded frames, sharded.

Per dataset fingerprint and video key, one Zarr v3 array ``uint8 [total_frames, H, W,
C]`` indexed by the global frame ``index``. The array is cut into shards of
``shard_frames`` frames (one object each, ``<fp>/<key>/c/<shard>/0/0/0``); inside a
shard every frame is one inner chunk, stored channels first (Zarr's ``transpose``
codec, order [0, 3, 1, 2]: the [3, H, W] layout torch readers want, so a cached frame
is decompressed straight into a sample's tensor), compressed with blosc (lz4, no
shuffle) and followed by its crc32c. The shard index (offset and length of each chunk, with its own
crc32c) sits at the start of the shard, so a frame, or a run of neighbouring frames, is
two ranged reads: the index (once per shard and process) and the chunk bytes.

This module writes and reads those bytes itself (``encode_shard``, ``parse_index``,
``decode_chunk``), following the Zarr v3 sharding spec to the byte, so that any Zarr v3
reader opens the arrays (the tests check this against zarr-python). Doing it here
instead of through zarr-python's ``Array`` keeps the hot path a ranged read plus an lz4
decode, and lets a shard be written whole, atomically, through the robostore Store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import google_crc32c
import numcodecs.blosc
import numpy as np

from robostore.errors import CorruptDataset

#: Version of this layout, part of every fingerprint and of the root group's attributes.
FORMAT_VERSION = 2
#: The attribute of the cache's root group (and each dataset's group) that marks a
#: folder as a robostore frame cache.
ROOT_ATTR = "robostore_frame_cache"

#: Raw (uncompressed) bytes a shard aims at when ``shard_frames`` is not given.
TARGET_SHARD_BYTES = 32 << 20
MIN_SHARD_FRAMES = 16
MAX_SHARD_FRAMES = 256

_EMPTY = np.uint64(2**64 - 1)  # index entry of a chunk that is not stored
# Measured on decoded AV1 frames (docs/frame_cache.md): decoded video compresses little
# losslessly (1.05-1.3x for every candidate), so read speed decides. Uncompressed chunks
# are read straight into the caller's frame (one copy out of the page cache); the
# fastest compressor, blosc-lz4 without shuffle, saves 7% of the bytes for a second
# copy that costs ~40% of a warm read. "lz4" stays available (a cache in a bucket
# pays per byte moved); single-threaded blosc: DataLoader workers already use the cores.
COMPRESSIONS = ("none", "lz4")
DEFAULT_COMPRESSION = "none"
_CNAME, _CLEVEL, _SHUFFLE = "lz4", 5, numcodecs.blosc.NOSHUFFLE
_BLOSC_CONFIG = {"typesize": 1, "cname": _CNAME, "clevel": _CLEVEL, "shuffle": "noshuffle", "blocksize": 0}
#: Chunk bytes are [1, C, H, W]: the array's [1, H, W, C] chunk transposed.
STORED_ORDER = [0, 3, 1, 2]
#: A chunk is its bytes followed by their crc32c.
CHECKSUM_BYTES = 4


def inner_codecs(compression: str) -> list[dict[str, Any]]:
    """The codecs of one frame chunk for ``compression`` (one of :data:`COMPRESSIONS`)."""
    compressor = [{"name": "blosc", "configuration": _BLOSC_CONFIG}] if compression == "lz4" else []
    return [
        {"name": "transpose", "configuration": {"order": STORED_ORDER}},
        {"name": "bytes"},
        *compressor,
        {"name": "crc32c"},
    ]


INDEX_CODECS: list[dict[str, Any]] = [
    {"name": "bytes", "configuration": {"endian": "little"}},
    {"name": "crc32c"},
]


def choose_shard_frames(frame_bytes: int) -> int:
    """Frames per shard: a power of two near ``TARGET_SHARD_BYTES`` of raw frames."""
    wanted = max(1, TARGET_SHARD_BYTES // max(1, frame_bytes))
    power = 2 ** round(math.log2(wanted))
    return int(min(MAX_SHARD_FRAMES, max(MIN_SHARD_FRAMES, power)))


@dataclass(frozen=True)
class ArrayLayout:
    """Shape and sharding of one cached video key."""

    num_frames: int
    height: int
    width: int
    channels: int
    shard_frames: int
    compression: str = DEFAULT_COMPRESSION

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """A frame as the array presents it: (H, W, C)."""
        return (self.height, self.width, self.channels)

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        """A frame as its chunk holds it: (C, H, W)."""
        return (self.channels, self.height, self.width)

    @property
    def frame_bytes(self) -> int:
        return self.height * self.width * self.channels

    @property
    def num_shards(self) -> int:
        return -(-self.num_frames // self.shard_frames)

    @property
    def index_nbytes(self) -> int:
        """Size of the shard index: (offset, length) uint64 per chunk plus its crc32c."""
        return self.shard_frames * 16 + 4

    def shard_range(self, shard: int) -> tuple[int, int]:
        """Global ``[start, stop)`` frames of ``shard`` (the last one may be short)."""
        start = shard * self.shard_frames
        return start, min(start + self.shard_frames, self.num_frames)

    def metadata(self, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        """The array's ``zarr.json``."""
        return {
            "zarr_format": 3,
            "node_type": "array",
            "shape": [self.num_frames, self.height, self.width, self.channels],
            "data_type": "uint8",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [self.shard_frames, *self.frame_shape]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0,
            "codecs": [
                {
                    "name": "sharding_indexed",
                    "configuration": {
                        "chunk_shape": [1, *self.frame_shape],
                        "codecs": inner_codecs(self.compression),
                        "index_codecs": INDEX_CODECS,
                        "index_location": "start",
                    },
                }
            ],
            "attributes": attributes or {},
            "dimension_names": ["index", "height", "width", "channels"],
            "storage_transformers": [],
        }

    @classmethod
    def from_metadata(cls, meta: Any, where: str) -> ArrayLayout:
        """Parse a ``zarr.json`` this module wrote; anything else is an error."""
        try:
            n, h, w, c = (int(x) for x in meta["shape"])
            shard = meta["chunk_grid"]["configuration"]["chunk_shape"]
            codecs = meta["codecs"][0]["configuration"]["codecs"]
            compression = "lz4" if any(codec.get("name") == "blosc" for codec in codecs) else "none"
            layout = cls(n, h, w, c, int(shard[0]), compression)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise CorruptDataset(f"{where}: not a frame cache array ({exc!r}); clear the cache") from exc
        if layout.metadata(meta.get("attributes")) != meta:
            raise CorruptDataset(
                f"{where}: a Zarr array with other codecs or shapes than this robostore version writes; "
                "clear the cache (robostore cache clear)"
            )
        return layout


def shard_key(fingerprint: str, video_key: str, shard: int) -> str:
    """Store path of one shard (Zarr v3 default chunk key encoding)."""
    return f"{fingerprint}/{video_key}/c/{shard}/0/0/0"


def array_prefix(fingerprint: str, video_key: str) -> str:
    return f"{fingerprint}/{video_key}"


def _crc(data: bytes | np.ndarray) -> bytes:
    # google_crc32c takes bytes and numpy arrays, not memoryviews.
    return np.uint32(google_crc32c.value(data)).tobytes()


def encode_shard(layout: ArrayLayout, frames: np.ndarray) -> list[bytes | memoryview]:
    """The bytes of a shard holding ``frames`` (uint8 [n, C, H, W], n <= shard_frames).

    Returned as parts (index, then per frame its bytes and their checksum) to be written
    back to back; uncompressed parts are views of ``frames``.
    Chunks are laid out in frame order right after the index, so neighbouring frames
    are neighbouring bytes. Positions past ``n`` (the end of the array) stay empty.
    """
    if frames.dtype != np.uint8 or frames.shape[1:] != layout.stored_shape or len(frames) > layout.shard_frames:
        raise ValueError(f"frames {frames.dtype} {frames.shape} do not fit a shard of {layout}")
    index = np.full((layout.shard_frames, 2), _EMPTY, dtype="<u8")
    parts: list[bytes | memoryview] = [b""]
    offset = layout.index_nbytes
    for i, frame in enumerate(frames):
        frame = np.ascontiguousarray(frame)
        if layout.compression == "lz4":
            compressed: bytes = numcodecs.blosc.compress(frame, _CNAME.encode(), _CLEVEL, _SHUFFLE, 0, 1)
            packed: bytes | memoryview = compressed
            checksum = _crc(compressed)
        else:
            packed = frame.reshape(-1).data  # the frame's own bytes: no copy before the write
            checksum = _crc(frame)
        parts.append(packed)
        parts.append(checksum)
        index[i] = (offset, len(packed) + CHECKSUM_BYTES)
        offset += len(packed) + CHECKSUM_BYTES
    raw_index = index.tobytes()
    parts[0] = raw_index + _crc(raw_index)
    return parts


#: A shard index as readers use it: per chunk ``(offset, length)`` in the shard, or None
#: where the chunk is not stored.
ShardIndex = list[tuple[int, int] | None]


def parse_index(layout: ArrayLayout, raw: bytes, where: str) -> ShardIndex:
    """The (offset, length) table of a shard, one entry per chunk; checks its crc32c."""
    if len(raw) != layout.index_nbytes or _crc(np.frombuffer(raw, np.uint8)[:-4]) != raw[-4:]:
        raise CorruptDataset(f"{where}: shard index is damaged (crc32c mismatch or short read)")
    pairs = np.frombuffer(raw, dtype="<u8", count=layout.shard_frames * 2).reshape(-1, 2).tolist()
    empty = int(_EMPTY)
    return [None if offset == empty else (offset, length) for offset, length in pairs]


def decode_chunk(layout: ArrayLayout, raw: np.ndarray, out: np.ndarray, where: Callable[[], str]) -> None:
    """Check one chunk's crc32c and decode it into ``out`` (a C-contiguous [C, H, W] frame).

    ``raw`` is the chunk as a 1-d uint8 array (a view into the bytes read); ``where()``
    names it in errors (built only then: this runs once per cached frame served).
    """
    body = raw[:-CHECKSUM_BYTES]
    check_chunk(body, raw[-CHECKSUM_BYTES:], where)
    if layout.compression == "none":
        if len(body) != out.nbytes:
            raise CorruptDataset(f"{where()}: chunk holds {len(body)} bytes, a frame is {out.nbytes}")
        out.reshape(-1)[:] = body
        return
    try:
        numcodecs.blosc.decompress(body, out)
    except (RuntimeError, ValueError) as exc:
        raise CorruptDataset(f"{where()}: chunk does not decompress ({exc})") from exc


def check_chunk(body: np.ndarray, checksum: np.ndarray, where: Callable[[], str]) -> None:
    """Raise CorruptDataset unless ``checksum`` (4 bytes) is the crc32c of ``body``."""
    if len(checksum) != CHECKSUM_BYTES or google_crc32c.value(body) != int.from_bytes(checksum.tobytes(), "little"):
        raise CorruptDataset(f"{where()}: chunk is damaged (crc32c mismatch)")


def group_json(attributes: dict[str, Any]) -> bytes:
    """A Zarr v3 group's ``zarr.json`` holding ``attributes``."""
    return json.dumps(
        {"zarr_format": 3, "node_type": "group", "attributes": attributes}, indent=2, sort_keys=True
    ).encode()
