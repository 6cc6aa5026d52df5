"""Where destination files come from: a plain copy of the source, or a derived subset."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Protocol

from robostore.errors import NotFound
from robostore.layout import INFO_PATH
from robostore.mirror.copy import DEFAULT_LIMITS, Limits, ProgressFn, Written, copy_file, sha256_of
from robostore.mirror.plan import Target, targets_from_listing
from robostore.schema import DatasetInfo
from robostore.store import FileInfo, Store

if TYPE_CHECKING:
    from robostore.validate import ValidationReport


class Source(Protocol):
    """What :func:`robostore.mirror` copies from."""

    store: Store

    def targets(self, listing: list[FileInfo]) -> list[Target]:
        """Every file the destination should hold, from the source listing."""
        ...

    def check(self, targets: list[Target]) -> None:
        """Raise a typed error before anything is written if the source is unusable."""
        ...

    def write(self, target: Target, dst: Store, on_bytes: ProgressFn | None) -> Written:
        """Produce ``target`` at ``dst`` (atomically); returns the bytes written."""
        ...

    def hash(self, target: Target) -> Written:
        """Size and sha256 of a plain-copy target's source file."""
        ...


def require_dataset(store: Store, listing: list[FileInfo]) -> None:
    """Raise :class:`NotFound` unless the listing holds ``meta/info.json``."""
    if not any(f.path == INFO_PATH for f in listing):
        raise NotFound(
            f"{store.describe(INFO_PATH)}: the source is not a LeRobot dataset (meta/info.json is missing); "
            "check the source URL"
        )


def require_valid(store: Store) -> ValidationReport:
    """Raise the typed error of the first problem :func:`robostore.validate.validate` finds;
    return its report (warnings included).

    The mp4 headers are checked when PyAV is installed (a mirror needs no decoder).
    """
    from robostore.validate import validate

    report = validate(store, check_videos=importlib.util.find_spec("av") is not None)
    report.raise_for_problems()
    return report


class CopySource:
    """Every file of the source, copied byte for byte.

    With ``check`` the source is validated before anything is written, so a broken
    source never overwrites a good destination; without it only info.json is parsed.
    """

    def __init__(self, store: Store, limits: Limits = DEFAULT_LIMITS, *, check: bool = True) -> None:
        self.store = store
        self.limits = limits
        self.check_source = check

    def targets(self, listing: list[FileInfo]) -> list[Target]:
        require_dataset(self.store, listing)
        return targets_from_listing(listing)

    def check(self, targets: list[Target]) -> None:
        # Nothing is read when nothing is to be written (a no-op re-mirror only lists).
        if self.check_source and targets:
            require_valid(self.store)
        elif any(t.path == INFO_PATH for t in targets):
            DatasetInfo.from_json(self.store.read(INFO_PATH), self.store.describe(INFO_PATH))

    def write(self, target: Target, dst: Store, on_bytes: ProgressFn | None) -> Written:
        assert target.source is not None
        return copy_file(
            self.store, target.source, dst, target.path, size=target.size, on_bytes=on_bytes, limits=self.limits
        )

    def hash(self, target: Target) -> Written:
        assert target.source is not None
        return sha256_of(self.store, target.source, size=target.size, part_size=self.limits.part_size)
