"""Generators of the LeRobot v3 variants found in the wild, made from lerobot-written fixtures.

Each generator copies a fixture from tests/data and rewrites some of its files the way a
converter, an older or newer lerobot, or a third-party writer leaves them. The rewrites
are deterministic (metadata and parquet rewrites, video stream copies), so the oracle
dumps that lerobot 0.4.4 returned for the same files (``tests/data/variants/*.npz``,
made by ``tests/make_variant_oracles.py``) stay valid. Variants that re-encode video are
shipped whole under ``tests/data/variants/<name>`` instead: an encoder's output may
change between library versions.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fixture_data import DATA, copy_fixture

VARIANTS_DIR = DATA / "variants"
EPISODES = Path("meta/episodes/chunk-000/file-000.parquet")


@dataclass(frozen=True)
class Variant:
    """One variant: the fixture it starts from, how it is made, the indices the oracle holds."""

    name: str
    base: str
    make: Callable[[Path], None] | None  # rewrites a copy of ``base`` in place; None: shipped whole
    indices: tuple[int, ...]
    #: lerobot 0.4.4 reads this variant wrongly: compare with the base fixture's oracle.
    oracle_from_base: bool = False

    def build(self, dst: Path) -> Path:
        """The variant dataset at ``dst`` (a fresh folder)."""
        if self.make is None:
            shutil.copytree(VARIANTS_DIR / self.name, dst)
            return dst
        copy_fixture(self.base, dst)
        self.make(dst)
        return dst

    @property
    def oracle(self) -> Path:
        return VARIANTS_DIR / f"{self.name}.expected.npz"


# ---------------------------------------------------------------------- helpers


def _edit_info(root: Path, edit: Callable[[dict], None]) -> None:
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info, indent=4))


def _rewrite_parquet(path: Path, edit: Callable[[pa.Table], pa.Table]) -> None:
    table = edit(pq.read_table(path))
    pq.write_table(table, path)


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, values)


# ---------------------------------------------------------------------- metadata variants


def channel_first(root: Path) -> None:
    """Camera shapes ``[3, H, W]`` named channel-first, as lerobot's v2.1→v3.0 converter
    leaves many older datasets (their stats stay ``(3, 1, 1)``)."""

    def edit(info: dict) -> None:
        for feature in info["features"].values():
            if feature["dtype"] in ("video", "image"):
                h, w, c = feature["shape"]
                feature["shape"] = [c, h, w]
                feature["names"] = ["channels", "height", "width"]

    _edit_info(root, edit)


def to_timestamp_last_frame(root: Path) -> None:
    """``videos/*/to_timestamp`` = the time of each episode's last frame (one frame short)."""
    fps = json.loads((root / "meta/info.json").read_text())["fps"]

    def edit(table: pa.Table) -> pa.Table:
        for name in [c for c in table.column_names if c.endswith("/to_timestamp")]:
            values = table.column(name).to_numpy() - 1.0 / fps
            table = _set_column(table, name, pa.array(values, pa.float64()))
        return table

    _rewrite_parquet(root / EPISODES, edit)


def tasks_column(root: Path) -> None:
    """``meta/tasks.parquet`` with a plain ``task`` column and no pandas index metadata."""
    table = pq.read_table(root / "meta/tasks.parquet")
    text = table.column("__index_level_0__").cast(pa.string())
    # Rows in reverse order: readers must go by task_index, not by position.
    out = pa.table({"task": text, "task_index": table.column("task_index")}).take(
        pa.array(range(table.num_rows - 1, -1, -1))
    )
    pq.write_table(out, root / "meta/tasks.parquet")


def list_columns(root: Path) -> None:
    """Vector columns stored as variable ``list<float>`` (as pandas writes them), not
    ``fixed_size_list``, and without the ``huggingface`` schema metadata."""
    for path in sorted((root / "data").rglob("*.parquet")):

        def edit(table: pa.Table) -> pa.Table:
            for i, field in enumerate(table.schema):
                if pa.types.is_fixed_size_list(field.type):
                    table = table.set_column(i, field.name, table.column(i).cast(pa.list_(field.type.value_type)))
            return table.replace_schema_metadata(None)

        _rewrite_parquet(path, edit)


def info_extras(root: Path) -> None:
    """``names`` as nested lists, dicts and null; ``fps`` keys in features; info.json keys
    robostore does not know (lerobot 0.6 writes ``video.g``, ``video.crf``, ...)."""

    def edit(info: dict) -> None:
        feats = info["features"]
        feats["observation.state"]["names"] = {"motors": [f"joint_{i}" for i in range(6)]}
        feats["action"]["names"] = [[f"joint_{i}" for i in range(6)]]
        feats["timestamp"]["names"] = None
        for feature in feats.values():
            feature["fps"] = info["fps"]
            if feature["dtype"] == "video":
                feature["info"].update(
                    {"video.g": 2, "video.crf": 30, "video.preset": 12, "video.backend": "pyav", "video.fast_decode": 0}
                )
        info["data_files_size_in_mb"] = 100
        info["streaming_encoding"] = False
        info["writer"] = {"name": "third-party", "version": "1.2"}

    _edit_info(root, edit)


def misfiled_episodes(root: Path) -> None:
    """The first episode of each data file filed under the previous file, as lerobot's
    v2.1→v3.0 converter does (lerobot issue #2401)."""

    def edit(table: pa.Table) -> pa.Table:
        chunk = table.column("data/chunk_index").to_numpy().copy()
        file = table.column("data/file_index").to_numpy().copy()
        pairs = list(zip(chunk.tolist(), file.tolist(), strict=True))
        for row in range(len(pairs) - 1, 0, -1):
            if pairs[row] != pairs[row - 1]:
                chunk[row], file[row] = pairs[row - 1]
        table = _set_column(table, "data/chunk_index", pa.array(chunk, pa.int64()))
        return _set_column(table, "data/file_index", pa.array(file, pa.int64()))

    _rewrite_parquet(root / EPISODES, edit)


def shifted_start(root: Path) -> None:
    """Videos whose episodes start late in a long file (``from_timestamp`` like
    335.33333333333337): every mp4's timestamps shifted by 10061 frames, by stream copy."""
    fps = json.loads((root / "meta/info.json").read_text())["fps"]
    shift_frames = 10061
    shift_s = shift_frames / fps  # 335.3666..., with the float noise of a division
    for path in sorted((root / "videos").rglob("*.mp4")):
        _remux(path, lambda pts, tb: pts + round(Fraction(shift_frames, fps) / tb))

    def edit(table: pa.Table) -> pa.Table:
        for name in [c for c in table.column_names if c.endswith("_timestamp")]:
            values = table.column(name).to_numpy() + shift_s
            table = _set_column(table, name, pa.array(values, pa.float64()))
        return table

    _rewrite_parquet(root / EPISODES, edit)


def _remux(path: Path, shift: Callable[[int, Fraction], int]) -> None:
    """Copy the packets of ``path`` into a new mp4, mapping each timestamp through ``shift``."""
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        # The offset goes into an edit list, in the movie's time scale (1/1000 s by default).
        options = {"movie_timescale": str(stream.time_base.denominator)}
        dst = av.open(str(tmp), "w", format="mp4", options=options)
        out = dst.add_stream_from_template(stream, opaque=True)
        out.time_base = stream.time_base
        for packet in src.demux(stream):
            if packet.dts is None:
                continue
            packet.pts = shift(packet.pts, stream.time_base)
            packet.dts = shift(packet.dts, stream.time_base)
            packet.stream = out
            dst.mux(packet)
        dst.close()
    tmp.replace(path)


# ---------------------------------------------------------------------- video variants (shipped)


def reencode(
    root: Path, codec: str, pix_fmt: str, options: dict[str, str], info_codec: str, audio: bool = False
) -> None:
    """Re-encode every mp4 of ``root`` (same frames, same timestamps) with ``codec``;
    ``audio`` adds an AAC audio stream. Used by ``make_variant_oracles.py`` only."""
    for path in sorted((root / "videos").rglob("*.mp4")):
        tmp = path.with_suffix(".tmp.mp4")
        with av.open(str(path)) as src, av.open(str(tmp), "w", format="mp4") as dst:
            in_stream = src.streams.video[0]
            fps = round(in_stream.average_rate)
            stream = dst.add_stream(codec, rate=fps)
            stream.width, stream.height = in_stream.codec_context.width, in_stream.codec_context.height
            stream.pix_fmt = pix_fmt
            stream.time_base = Fraction(1, fps)
            stream.codec_context.time_base = Fraction(1, fps)
            stream.options = dict(options)
            sound = dst.add_stream("aac", rate=16000) if audio else None
            frames = [(f.time, f.to_ndarray(format="rgb24")) for f in src.decode(in_stream)]
            for t, rgb in frames:
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = round(t * fps)
                frame.time_base = Fraction(1, fps)
                for packet in stream.encode(frame):
                    dst.mux(packet)
            for packet in stream.encode():
                dst.mux(packet)
            if sound is not None:
                duration = frames[-1][0] + 1 / fps
                samples = np.sin(np.arange(int(16000 * duration)) * 2 * np.pi * 440 / 16000).astype(np.float32)
                for start in range(0, len(samples), 1024):
                    chunk = samples[start : start + 1024]
                    frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                    frame.sample_rate = 16000
                    frame.pts = start
                    for packet in sound.encode(frame):
                        dst.mux(packet)
                for packet in sound.encode():
                    dst.mux(packet)
        tmp.replace(path)

    def edit(info: dict) -> None:
        for feature in info["features"].values():
            if feature["dtype"] == "video":
                feature["info"].update({"video.codec": info_codec, "video.pix_fmt": pix_fmt, "has_audio": audio})

    _edit_info(root, edit)


VIDEO_ENCODINGS: dict[str, tuple[str, str, dict[str, str], str, bool]] = {
    # name: (encoder, pix_fmt, options, info.json codec, audio)
    "h264_bframes": ("libx264", "yuv420p", {"bf": "3", "g": "12", "threads": "1"}, "h264", False),
    "hevc": (
        "libx265",
        "yuv420p",
        {"x265-params": "log-level=error:pools=1:frame-threads=1:no-open-gop=1", "g": "10"},
        "hevc",
        False,
    ),
    "mpeg4": ("mpeg4", "yuv420p", {"g": "8", "qscale": "2"}, "mpeg4", False),
    "yuv420p10le": (
        "libx265",
        "yuv420p10le",
        {"x265-params": "log-level=error:pools=1:frame-threads=1:no-open-gop=1"},
        "hevc",
        False,
    ),
    "audio": ("libx264", "yuv420p", {"g": "10", "threads": "1"}, "h264", True),
}


def no_stats(root: Path) -> None:
    """No ``meta/stats.json`` (lerobot reads such datasets; its ``meta.stats`` is None)."""
    (root / "meta/stats.json").unlink()


def zero_episodes(root: Path) -> None:
    """A dataset created and never recorded into: info.json alone (total_episodes 0)."""
    for name in ("data", "videos", "meta/episodes"):
        shutil.rmtree(root / name)
    for name in ("meta/stats.json", "meta/tasks.parquet"):
        (root / name).unlink()

    def edit(info: dict) -> None:
        info.update(total_episodes=0, total_frames=0, total_tasks=0, splits={})

    _edit_info(root, edit)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("channel_first", "video_basic", channel_first, (0, 29, 30, 89)),
        Variant("channel_first_image", "image_basic", channel_first, (0, 14, 29)),
        Variant("to_timestamp_last_frame", "video_basic", to_timestamp_last_frame, (0, 29, 30, 49, 50, 89)),
        # lerobot 0.4.4 returns the row number as the task of a tasks.parquet without the
        # pandas index (0.6.1 reads the `task` column): the base fixture holds the values.
        Variant("tasks_column", "image_basic", tasks_column, (0, 7, 14, 15, 29), oracle_from_base=True),
        Variant("list_columns", "video_basic", list_columns, (0, 29, 30, 89)),
        Variant("info_extras", "video_basic", info_extras, (0, 45, 89)),
        Variant("misfiled_episodes", "multi_chunk", misfiled_episodes, (0, 39, 40, 64, 65, 114, 115, 154, 155, 179)),
        Variant("shifted_start", "video_basic", shifted_start, (0, 29, 30, 49, 50, 89)),
        *(Variant(name, "video_basic", None, (0, 11, 29, 30, 49, 50, 77, 89)) for name in VIDEO_ENCODINGS),
        Variant("no_stats", "image_basic", no_stats, (0, 14, 29)),
        Variant("zero_episodes", "video_basic", zero_episodes, ()),
    )
}
