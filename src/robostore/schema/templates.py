"""Path templates of info.json (``data_path``, ``video_path``), checked before use.

info.json comes from strangers, so a template is parsed and every field checked
against an allow-list before anything is formatted: no attribute access
(``{chunk_index.__class__}``), no indexing, no conversions, no unknown fields, and no
literal text that could leave the dataset root.
"""

from __future__ import annotations

import re
import string
from typing import Any

from robostore.errors import PathError, SchemaError
from robostore.store import normalize_path

#: Fields lerobot's templates use (v3.0 data/video files, and older per-episode layouts).
ALLOWED_FIELDS = frozenset(
    {"chunk_index", "file_index", "video_key", "episode_chunk", "episode_index", "image_key", "frame_index"}
)
_INT_FIELDS = ALLOWED_FIELDS - {"video_key", "image_key"}
_SPEC = re.compile(r"0?[1-9]?[0-9]?d?")
_KEY_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_key(key: Any, what: str = "feature key") -> str:
    """Return ``key`` if it is safe as a feature/video key (it becomes a path segment).

    Keys may contain dots (``observation.images.cam0``) but no ``/``, backslash, NUL or
    control characters, and may not be empty, ``.`` or ``..``.
    """
    if not isinstance(key, str) or not key or key in (".", "..") or _KEY_FORBIDDEN.search(key):
        raise PathError(
            f"{what} {key!r} is not allowed: keys become path segments and may not be empty, "
            "'.', '..', or contain '/', '\\', NUL or control characters"
        )
    return key


class PathTemplate:
    """A parsed, checked path template such as ``data/chunk-{chunk_index:03d}/...``."""

    def __init__(self, template: str, *, name: str, required: frozenset[str] | set[str] = frozenset()) -> None:
        if not isinstance(template, str):
            raise SchemaError(f"{name} must be a string template, got {template!r}")
        self.template = template
        self.name = name
        fields: list[str] = []
        pattern: list[str] = []
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise SchemaError(f"{name} {template!r} is not a valid template: {exc}") from exc
        skeleton = []
        for literal, field, spec, conversion in parsed:
            skeleton.append(literal)
            pattern.append(re.escape(literal))
            if field is None:
                continue
            if field not in ALLOWED_FIELDS:
                raise SchemaError(
                    f"{name} {template!r} uses field {{{field}}}: only plain "
                    f"{sorted(ALLOWED_FIELDS)} are allowed (no attribute access, indexing or unknown fields)"
                )
            if conversion is not None or (spec and not _SPEC.fullmatch(spec)):
                raise SchemaError(
                    f"{name} {template!r}: field {{{field}}} has a conversion or format spec that is not allowed"
                )
            if spec and field not in _INT_FIELDS:
                raise SchemaError(f"{name} {template!r}: field {{{field}}} takes no format spec")
            pattern.append(rf"(?P<{field}>\d+)" if field in _INT_FIELDS else rf"(?P<{field}>[^/]+)")
            fields.append(field)
            skeleton.append("x")
        missing = set(required) - set(fields)
        if missing:
            raise SchemaError(f"{name} {template!r} lacks the field(s) {sorted(missing)}")
        try:
            normalize_path("".join(skeleton))
        except PathError as exc:
            raise SchemaError(f"{name} {template!r} could leave the dataset root: {exc}") from exc
        self.fields = frozenset(fields)
        try:
            self._pattern: re.Pattern[str] | None = re.compile("".join(pattern))
        except re.error:  # a field used twice: such a template is only formatted, never matched
            self._pattern = None

    def format(self, **values: Any) -> str:
        """Fill the template; integer fields must be non-negative ints, keys safe keys."""
        for field in self.fields:
            if field not in values:
                raise SchemaError(f"{self.name} {self.template!r} needs a value for {field}")
            value = values[field]
            if field in _INT_FIELDS:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise SchemaError(f"{self.name}: {field} must be a non-negative integer, got {value!r}")
            else:
                check_key(value, field)
        return normalize_path(self.template.format(**{f: values[f] for f in self.fields}))

    def match(self, path: str) -> dict[str, int | str] | None:
        """The field values ``format`` would need to give ``path``, or None if it cannot give it."""
        found = self._pattern.fullmatch(path) if self._pattern is not None else None
        if found is None:
            return None
        values: dict[str, int | str] = {f: int(v) if f in _INT_FIELDS else v for f, v in found.groupdict().items()}
        try:
            return values if self.format(**values) == path else None
        except SchemaError:
            return None

    def __repr__(self) -> str:
        return f"PathTemplate({self.template!r})"
