"""``meta/info.json``: the dataset's schema, counts and path templates."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from robostore.errors import RobostoreError, SchemaError
from robostore.schema import language
from robostore.schema.features import Feature
from robostore.schema.templates import PathTemplate, check_key

CODEBASE_VERSION = "v3.0"
#: The per-episode layout (one parquet and one mp4 per episode, jsonl metadata), read in place.
V21 = "v2.1"
DEFAULT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
DEFAULT_CHUNKS_SIZE = 1000
DEFAULT_DATA_FILES_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILES_SIZE_IN_MB = 200

ModelT = TypeVar("ModelT", bound=BaseModel)


class DatasetInfo(BaseModel):
    """The content of ``meta/info.json``. Unknown fields are kept on a round trip."""

    model_config = ConfigDict(extra="allow", strict=True, validate_assignment=True)

    codebase_version: str = CODEBASE_VERSION
    robot_type: str | None = None
    total_episodes: int = Field(0, ge=0)
    total_frames: int = Field(0, ge=0)
    total_tasks: int = Field(0, ge=0)
    chunks_size: int = Field(DEFAULT_CHUNKS_SIZE, ge=1)
    data_files_size_in_mb: float = Field(DEFAULT_DATA_FILES_SIZE_IN_MB, gt=0)
    video_files_size_in_mb: float = Field(DEFAULT_VIDEO_FILES_SIZE_IN_MB, gt=0)
    fps: int = Field(gt=0)
    splits: dict[str, str] = Field(default_factory=dict)
    data_path: str = DEFAULT_DATA_PATH
    video_path: str | None = DEFAULT_VIDEO_PATH
    features: dict[str, Feature]

    @field_validator("codebase_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if not value.startswith("v3.") and value != V21:
            raise ValueError(
                f"codebase_version {value!r} is neither v3.x nor v2.1; open it with lerobot 0.3 and "
                "re-save it as v2.1, or convert it with lerobot's converters"
            )
        return value

    @field_validator("features")
    @classmethod
    def _safe_keys(cls, value: dict[str, Feature]) -> dict[str, Feature]:
        for key, feature in value.items():
            try:
                check_key(key)
                if feature.is_language:
                    language.fields_of(key)
            except SchemaError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _templates(self) -> DatasetInfo:
        # Parse now so a bad template fails at load, not at first use.
        self.data_template  # noqa: B018 - evaluated for its parse errors
        if self.video_keys and self.video_path is None:
            raise ValueError(f"video features {self.video_keys} exist but video_path is null")
        if self.video_path is not None:
            self.video_template  # noqa: B018 - evaluated for its parse errors
        return self

    @property
    def per_episode_files(self) -> bool:
        """True for the v2.1 layout: one data file and one mp4 per episode, numbered by
        ``episode_chunk`` / ``episode_index`` (see :mod:`robostore.v21`)."""
        return self.codebase_version == V21

    @property
    def _numbering(self) -> set[str]:
        return {"episode_chunk", "episode_index"} if self.per_episode_files else {"chunk_index", "file_index"}

    # pydantic keeps cached_property values out of validation and dumps.
    @cached_property
    def data_template(self) -> PathTemplate:
        return PathTemplate(self.data_path, name="data_path", required=self._numbering)

    @cached_property
    def video_template(self) -> PathTemplate:
        if self.video_path is None:
            raise SchemaError("this dataset has no video_path template (it has no video features)")
        return PathTemplate(self.video_path, name="video_path", required={"video_key", *self._numbering})

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.is_video]

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.is_image]

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.is_camera]

    @property
    def depth_keys(self) -> list[str]:
        """Cameras holding depth maps (read as float32 millimetres, not RGB)."""
        return [k for k, f in self.features.items() if f.is_depth]

    @property
    def rgb_camera_keys(self) -> list[str]:
        """Cameras holding RGB frames (uint8, converted to [0, 1] floats): all but depth maps."""
        return [k for k, f in self.features.items() if f.is_camera and not f.is_depth]

    @property
    def language_keys(self) -> list[str]:
        """lerobot 0.6 language annotation columns."""
        return [k for k, f in self.features.items() if f.is_language]

    def data_file(self, chunk_index: int, file_index: int) -> str:
        """Dataset-relative path of a data parquet file.

        In the v2.1 layout a file holds one episode: ``chunk_index`` is its
        ``episode_chunk`` and ``file_index`` its ``episode_index``.
        """
        return self.data_template.format(**_numbers(chunk_index, file_index))

    def video_file(self, video_key: str, chunk_index: int, file_index: int) -> str:
        """Dataset-relative path of a camera's mp4 file (numbered as in :meth:`data_file`)."""
        return self.video_template.format(video_key=video_key, **_numbers(chunk_index, file_index))

    def to_json_dict(self) -> dict[str, Any]:
        """The dict written to info.json."""
        # cached_property values live in __dict__, which extra="allow" would dump too.
        out = self.model_dump(mode="json", exclude={"data_template", "video_template"})
        out["features"] = {k: f.to_json() for k, f in self.features.items()}
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_json_dict(), indent=4).encode()

    @classmethod
    def from_json(cls, data: bytes | str, where: str = "meta/info.json") -> DatasetInfo:
        """Parse info.json; any problem is a :class:`SchemaError` naming ``where``."""
        return parse_model(cls, load_json_object(data, where, "an info.json"), where)


def _numbers(chunk_index: int, file_index: int) -> dict[str, int]:
    """A file's numbers under the names of both layouts (a template uses one pair)."""
    return {
        "chunk_index": chunk_index,
        "file_index": file_index,
        "episode_chunk": chunk_index,
        "episode_index": file_index,
    }


def load_json_object(
    data: bytes | str, where: str, what: str, error: type[RobostoreError] = SchemaError
) -> dict[str, Any]:
    """Parse ``data`` as a JSON object; anything else is an ``error`` (a
    :class:`SchemaError` unless told) naming ``where``."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: arrays or objects nested thousands deep
        raise error(f"{where}: not valid JSON ({exc}); the file is damaged or not {what}") from exc
    if not isinstance(raw, dict):
        raise error(f"{where}: expected a JSON object, got {type(raw).__name__}")
    return raw


def parse_model(model: type[ModelT], raw: Any, where: str) -> ModelT:
    """Validate ``raw`` as ``model``; errors become a :class:`SchemaError` naming ``where``."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()[:10]
        )
        raise SchemaError(f"{where}: {problems}") from None
    except SchemaError as exc:
        raise SchemaError(f"{where}: {exc}") from None
