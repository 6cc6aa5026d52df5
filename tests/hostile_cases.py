"""A corpus of hostile or broken datasets, each with the error it must produce.

Every case starts from a copy of a lerobot-written fixture and damages it in one way.
``level`` says when a reader must notice: ``"meta"`` cases break ``meta/`` and must
fail when a dataset is opened; ``"data"`` cases damage a data or video file and must
fail (with a typed error naming the file) at the latest when that file is read.
``validate`` must report every case as a problem at ``path``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robostore.errors import CorruptDataset, NotFound, RobostoreError, SchemaError, VideoError

INFO = "meta/info.json"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
STATS = "meta/stats.json"
TASKS = "meta/tasks.parquet"
CAM = "observation.images.cam0"
MP4 = f"videos/{CAM}/chunk-000/file-000.mp4"
MP4_2 = f"videos/{CAM}/chunk-001/file-000.mp4"
DATA = "data/chunk-000/file-000.parquet"
DATA_2 = "data/chunk-001/file-001.parquet"


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Callable[[Path], None]
    error: type[RobostoreError]
    fragment: str  # must appear in the error message / problem
    path: str  # the dataset file the problem is about
    level: str = "meta"  # "meta": opening fails; "data": reading the file fails
    fixture: str = "multi_chunk"
    validate: bool = True  # validate reports it (it does not decode every PNG image)


# ---------------------------------------------------------------- helpers
def edit_info(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        raw = json.loads((root / INFO).read_text())
        change(raw)
        (root / INFO).write_text(json.dumps(raw))

    return mutate


def set_info(**fields: object) -> Callable[[Path], None]:
    return edit_info(lambda raw: raw.update(fields))


def drop_info(field: str) -> Callable[[Path], None]:
    return edit_info(lambda raw: raw.pop(field))


def set_feature(key: str, **fields: object) -> Callable[[Path], None]:
    return edit_info(lambda raw: raw["features"][key].update(fields))


def rename_feature(old: str, new: str) -> Callable[[Path], None]:
    def change(raw: dict) -> None:
        raw["features"] = {(new if k == old else k): v for k, v in raw["features"].items()}

    return edit_info(change)


def write_bytes(rel: str, data: bytes) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_bytes(data)


def truncate(rel: str, keep: float) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        data = (root / rel).read_bytes()
        (root / rel).write_bytes(data[: int(len(data) * keep)])

    return mutate


def corrupt_middle(rel: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        data = bytearray((root / rel).read_bytes())
        mid = len(data) // 2
        data[mid : mid + 64] = bytes(64)
        (root / rel).write_bytes(bytes(data))

    return mutate


def remove(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).unlink()


def edit_table(rel: str, change: Callable[[pa.Table], pa.Table]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        table = pq.read_table(root / rel)
        pq.write_table(change(table), root / rel)

    return mutate


def set_column(name: str, change: Callable[[list], list]) -> Callable[[pa.Table], pa.Table]:
    def apply(table: pa.Table) -> pa.Table:
        i = table.column_names.index(name)
        values = change(table.column(name).to_pylist())
        return table.set_column(i, name, pa.array(values, table.schema.field(name).type))

    return apply


def edit_episodes(name: str, change: Callable[[list], list]) -> Callable[[Path], None]:
    return edit_table(EPISODES, set_column(name, change))


def at(i: int, fn: Callable[[object], object]) -> Callable[[list], list]:
    def change(values: list) -> list:
        values = list(values)
        values[i] = fn(values[i])
        return values

    return change


def edit_stats(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        raw = json.loads((root / STATS).read_text())
        change(raw)
        (root / STATS).write_text(json.dumps(raw))

    return mutate


def mp4(
    codec: str = "libx264", frames: int = 3, size: tuple[int, int] = (48, 64), video: bool = True, audio: bool = False
) -> bytes:
    """A small mp4 made on the spot (no test data file needed)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        if video:
            stream = container.add_stream(codec, rate=30)
            stream.height, stream.width = size
            stream.pix_fmt = "yuv420p"
        if audio:
            sound = container.add_stream("aac", rate=16000)
        container.start_encoding()
        if video:
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(np.full((*size, 3), (i * 20) % 256, np.uint8), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        if audio:
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate = 16000
            container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return buf.getvalue()


def replace_mp4(rel: str, **kw: object) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_bytes(mp4(**kw))


def duplicate_episode_row(table: pa.Table) -> pa.Table:
    return pa.concat_tables([table, table.slice(1, 1)])


def drop_column(name: str) -> Callable[[pa.Table], pa.Table]:
    return lambda table: table.drop_columns([name])


def drop_data_rows(table: pa.Table) -> pa.Table:
    return table.slice(0, table.num_rows - 5)


def narrow_vectors(name: str, width: int) -> Callable[[pa.Table], pa.Table]:
    def apply(table: pa.Table) -> pa.Table:
        values = [v[:width] for v in table.column(name).to_pylist()]
        return table.set_column(table.column_names.index(name), name, pa.array(values, pa.list_(pa.float32(), width)))

    return apply


def as_strings(name: str) -> Callable[[pa.Table], pa.Table]:
    def apply(table: pa.Table) -> pa.Table:
        values = [str(v) for v in table.column(name).to_pylist()]
        return table.set_column(table.column_names.index(name), name, pa.array(values))

    return apply


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# ---------------------------------------------------------------- the corpus
CASES: list[Case] = [
    # info.json: not JSON, wrong types, missing fields, bad values
    Case("info not json", write_bytes(INFO, b"{ not json"), SchemaError, "not valid JSON", INFO),
    Case("info empty", write_bytes(INFO, b""), SchemaError, "not valid JSON", INFO),
    Case("info binary garbage", write_bytes(INFO, bytes(range(256))), SchemaError, "not valid JSON", INFO),
    Case("info is a list", write_bytes(INFO, b"[1, 2, 3]"), SchemaError, "JSON object", INFO),
    Case("info nested too deep", write_bytes(INFO, nested(100_000)), SchemaError, "not valid JSON", INFO),
    Case("fps is a string", set_info(fps="30"), SchemaError, "fps", INFO),
    Case("fps is zero", set_info(fps=0), SchemaError, "fps", INFO),
    Case("fps negative", set_info(fps=-30), SchemaError, "fps", INFO),
    Case("fps fractional", set_info(fps=29.97), SchemaError, "fps", INFO),
    Case("total_frames string", set_info(total_frames="180"), SchemaError, "total_frames", INFO),
    Case("total_episodes negative", set_info(total_episodes=-1), SchemaError, "total_episodes", INFO),
    Case("chunks_size zero", set_info(chunks_size=0), SchemaError, "chunks_size", INFO),
    Case("negative file size", set_info(data_files_size_in_mb=-100), SchemaError, "data_files_size_in_mb", INFO),
    Case("negative video size", set_info(video_files_size_in_mb=-1), SchemaError, "video_files_size_in_mb", INFO),
    Case("missing fps", drop_info("fps"), SchemaError, "fps", INFO),
    Case("missing features", drop_info("features"), SchemaError, "features", INFO),
    Case("features is a list", set_info(features=[1, 2]), SchemaError, "features", INFO),
    Case("old codebase version", set_info(codebase_version="v2.0"), SchemaError, "v2.0", INFO),
    Case("v2.1 with v3.0 templates", set_info(codebase_version="v2.1"), SchemaError, "episode_chunk", INFO),
    Case("video_path null with videos", set_info(video_path=None), SchemaError, "video_path is null", INFO),
    Case("unknown dtype", set_feature("action", dtype="complex128"), SchemaError, "complex128", INFO),
    Case("shape with zero", set_feature("action", shape=[0]), SchemaError, "shape", INFO),
    Case("shape not a list", set_feature("action", shape="6"), SchemaError, "shape", INFO),
    Case("camera shape 2-d", set_feature(CAM, shape=[48, 64]), SchemaError, "height, width, channels", INFO),
    Case(
        "5 GB per-frame size claim",
        set_feature("action", shape=[1_250_000_000]),
        SchemaError,
        "per frame",
        INFO,
    ),
    Case("huge camera claim", set_feature(CAM, shape=[100_000, 100_000, 3]), SchemaError, "per frame", INFO),
    # templates
    Case(
        "template attribute access",
        set_info(data_path="data/{chunk_index.__class__}/{file_index}.parquet"),
        SchemaError,
        "__class__",
        INFO,
    ),
    Case(
        "template indexing",
        set_info(data_path="data/{chunk_index[0]}/{file_index}.parquet"),
        SchemaError,
        "chunk_index[0]",
        INFO,
    ),
    Case(
        "template unknown field",
        set_info(video_path="videos/{video_key}/{secret}/{chunk_index}/{file_index}.mp4"),
        SchemaError,
        "{secret}",
        INFO,
    ),
    Case(
        "template dotdot",
        set_info(data_path="../../outside/{chunk_index}/{file_index}.parquet"),
        SchemaError,
        "leave the dataset root",
        INFO,
    ),
    Case(
        "template absolute",
        set_info(video_path="/tmp/{video_key}/{chunk_index}/{file_index}.mp4"),
        SchemaError,
        "leave the dataset root",
        INFO,
    ),
    Case(
        "template conversion",
        set_info(data_path="data/{chunk_index!r}/{file_index}.parquet"),
        SchemaError,
        "conversion",
        INFO,
    ),
    # feature keys
    Case("feature key with slash", rename_feature("action", "act/ion"), SchemaError, "not allowed", INFO),
    Case("video key with dotdot", rename_feature(CAM, "../../etc"), SchemaError, "not allowed", INFO),
    Case("feature key dotdot", rename_feature("action", ".."), SchemaError, "not allowed", INFO),
    Case("feature key with NUL", rename_feature("action", "act\x00ion"), SchemaError, "not allowed", INFO),
    Case("feature key empty", rename_feature("action", ""), SchemaError, "not allowed", INFO),
    # the episodes table
    Case(
        "episodes gap",
        edit_table(
            EPISODES,
            lambda t: set_column("dataset_to_index", at(2, lambda v: v + 1))(
                set_column("dataset_from_index", at(2, lambda v: v + 1))(t)
            ),
        ),
        CorruptDataset,
        "gap",
        "meta/episodes",
    ),
    Case(
        "episodes overlap",
        edit_table(
            EPISODES,
            lambda t: set_column("dataset_to_index", at(2, lambda v: v - 1))(
                set_column("dataset_from_index", at(2, lambda v: v - 1))(t)
            ),
        ),
        CorruptDataset,
        "overlap",
        "meta/episodes",
    ),
    Case(
        "episodes length disagrees",
        edit_episodes("length", at(0, lambda v: v + 3)),
        CorruptDataset,
        "length",
        "meta/episodes",
    ),
    Case("total_frames off by one", set_info(total_frames=181), CorruptDataset, "total_frames is 181", INFO),
    Case("total_episodes wrong", set_info(total_episodes=9), CorruptDataset, "total_episodes is 9", INFO),
    Case(
        "duplicate episode index",
        edit_table(EPISODES, duplicate_episode_row),
        CorruptDataset,
        "more than once",
        "meta/episodes",
    ),
    Case(
        "episode row missing",
        edit_table(EPISODES, lambda t: pa.concat_tables([t.slice(0, 2), t.slice(3)])),
        CorruptDataset,
        "missing e.g. [2]",
        "meta/episodes",
    ),
    Case(
        "missing episodes column",
        edit_table(EPISODES, drop_column("dataset_from_index")),
        CorruptDataset,
        "dataset_from_index",
        "meta/episodes",
    ),
    Case(
        "missing video column",
        edit_table(EPISODES, drop_column(f"videos/{CAM}/from_timestamp")),
        CorruptDataset,
        "from_timestamp",
        "meta/episodes",
    ),
    Case(
        "from_timestamp beyond the video",
        edit_episodes(f"videos/{CAM}/from_timestamp", at(0, lambda v: v + 60.0)),
        CorruptDataset,
        "to_timestamp",
        "meta/episodes",
    ),
    Case(
        "to_timestamp beyond the episode",
        edit_episodes(f"videos/{CAM}/to_timestamp", at(0, lambda v: v + 60.0)),
        CorruptDataset,
        "to_timestamp",
        "meta/episodes",
    ),
    Case(
        "episode beyond the end of its video",
        edit_table(
            EPISODES,
            lambda t: set_column(f"videos/{CAM}/to_timestamp", at(0, lambda v: v + 60.0))(
                set_column(f"videos/{CAM}/from_timestamp", at(0, lambda v: v + 60.0))(t)
            ),
        ),
        VideoError,
        "lasts",
        MP4,
        level="data",
    ),
    Case(
        "from_timestamp NaN",
        edit_episodes(f"videos/{CAM}/from_timestamp", at(0, lambda _: float("nan"))),
        CorruptDataset,
        "from_timestamp nan",
        "meta/episodes",
    ),
    Case(
        "data file index negative",
        edit_episodes("data/file_index", at(1, lambda _: -1)),
        CorruptDataset,
        "data/file_index is -1",
        "meta/episodes",
    ),
    Case(
        "video chunk index negative",
        edit_episodes(f"videos/{CAM}/chunk_index", at(1, lambda _: -1)),
        CorruptDataset,
        "chunk_index is -1",
        "meta/episodes",
    ),
    Case("episodes parquet truncated", truncate(EPISODES, 0.5), CorruptDataset, "not a readable parquet", EPISODES),
    Case("episodes parquet garbage", corrupt_middle(EPISODES), CorruptDataset, EPISODES, EPISODES),
    Case("tasks parquet truncated", truncate(TASKS, 0.3), CorruptDataset, "not a readable parquet", TASKS),
    Case("tasks missing", remove(TASKS), CorruptDataset, "missing", TASKS),
    Case(
        "unknown task in episode",
        edit_episodes("tasks", at(0, lambda _: ["never defined"])),
        CorruptDataset,
        "never defined",
        "meta/episodes",
    ),
    # stats
    Case("stats not json", write_bytes(STATS, b"{]"), SchemaError, "not valid JSON", STATS),
    Case("stats nested too deep", write_bytes(STATS, nested(100_000)), SchemaError, "not valid JSON", STATS),
    Case(
        "stats wrong shape",
        edit_stats(lambda raw: raw["action"].update(mean=[0.0, 1.0])),
        CorruptDataset,
        "shape",
        STATS,
    ),
    Case("stats not numbers", edit_stats(lambda raw: raw["action"].update(min="low")), SchemaError, "min", STATS),
    # data files
    Case(
        "data parquet truncated", truncate(DATA_2, 0.5), CorruptDataset, "not a readable parquet", DATA_2, level="data"
    ),
    Case(
        "data parquet footerless",
        truncate(DATA_2, 0.97),
        CorruptDataset,
        "not a readable parquet",
        DATA_2,
        level="data",
    ),
    Case("data parquet missing", remove(DATA_2), NotFound, "not found", DATA_2, level="data"),
    Case("data rows missing", edit_table(DATA, drop_data_rows), CorruptDataset, "episode 0", DATA, level="data"),
    Case(
        "data index column wrong",
        edit_table(DATA, set_column("index", lambda v: [x + 1000 for x in v])),
        CorruptDataset,
        "index",
        DATA,
        level="data",
    ),
    Case(
        "data file index points nowhere",
        edit_episodes("data/file_index", at(1, lambda _: 99)),
        NotFound,
        "not found",
        "data/chunk-000/file-099.parquet",
        level="data",
    ),
    Case(
        "data feature column missing",
        edit_table(DATA, drop_column("action")),
        CorruptDataset,
        "'action' is missing",
        DATA,
        level="data",
    ),
    Case(
        "data vectors too narrow",
        edit_table(DATA, narrow_vectors("action", 5)),
        CorruptDataset,
        "5 values per frame",
        DATA,
        level="data",
    ),
    Case(
        "data numbers as strings",
        edit_table(DATA, as_strings("timestamp")),
        CorruptDataset,
        "holds string values",
        DATA,
        level="data",
    ),
    Case(
        "data task_index out of range",
        edit_table(DATA, set_column("task_index", lambda v: [99] * len(v))),
        CorruptDataset,
        "task_index 99",
        DATA,
        level="data",
    ),
    # video files
    Case("mp4 missing", remove(MP4_2), NotFound, "not found", MP4_2, level="data"),
    Case("mp4 truncated moov", truncate(MP4_2, 0.5), VideoError, MP4_2, MP4_2, level="data"),
    Case("mp4 garbage", write_bytes(MP4_2, b"\x00" * 4096), VideoError, MP4_2, MP4_2, level="data"),
    Case("mp4 empty", write_bytes(MP4_2, b""), VideoError, MP4_2, MP4_2, level="data"),
    Case(
        "mp4 audio only",
        replace_mp4(MP4_2, video=False, audio=True),
        VideoError,
        "no video stream",
        MP4_2,
        level="data",
    ),
    Case("mp4 zero frames", replace_mp4(MP4_2, frames=0), VideoError, MP4_2, MP4_2, level="data"),
    Case("mp4 wrong codec", replace_mp4(MP4_2, codec="libx264", frames=60), VideoError, "h264", MP4_2, level="data"),
    Case(
        "mp4 wrong resolution",
        replace_mp4(MP4_2, frames=60, size=(96, 128)),
        VideoError,
        "96x128",
        MP4_2,
        level="data",
    ),
    # image features (PNG in parquet)
    Case(
        "image bytes not png",
        edit_table(
            DATA,
            lambda t: t.set_column(
                t.column_names.index(CAM),
                CAM,
                pa.array([{"bytes": b"not a png", "path": None}] * t.num_rows, t.schema.field(CAM).type),
            ),
        ),
        CorruptDataset,
        DATA,
        DATA,
        level="data",
        fixture="image_basic",
        validate=False,
    ),
]

assert len({c.name for c in CASES}) == len(CASES)
