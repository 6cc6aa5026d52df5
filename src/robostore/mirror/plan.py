"""Planning: which destination files to write, in which order, from listings alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from robostore.layout import INFO_PATH, META_DIR
from robostore.mirror.manifest import MANIFEST_PATH, Manifest
from robostore.store import FileInfo

#: Write order: payload (data, videos, anything else), then meta/, then meta/info.json.
PAYLOAD, META, INFO = 0, 1, 2


def phase_of(path: str) -> int:
    """The write phase of a destination path (see :data:`PAYLOAD`, :data:`META`, :data:`INFO`)."""
    if path == INFO_PATH:
        return INFO
    if path.startswith(META_DIR + "/"):
        return META
    return PAYLOAD


@dataclass(frozen=True, slots=True)
class Target:
    """A file the destination should hold.

    ``source`` is the source path for a plain copy, ``None`` for a file derived from
    several source files (subsets, conversions). ``token`` is the source token (for
    derived files, a digest of their inputs); ``size`` the expected size when known;
    ``estimate`` a rough size of a derived file, for the progress bar only.
    """

    path: str
    token: str | None
    size: int | None
    source: str | None
    estimate: int | None = None


Action = Literal["copy", "check", "skip"]


@dataclass(frozen=True, slots=True)
class Item:
    """One planned step: ``copy`` it, ``check`` it (compare sha256 of both sides), or ``skip`` it."""

    target: Target
    action: Action
    reason: str

    @property
    def path(self) -> str:
        return self.target.path


@dataclass
class Plan:
    items: list[Item]
    extra: list[str]

    def phase(self, phase: int) -> list[Item]:
        return [i for i in self.items if phase_of(i.path) == phase]

    @property
    def to_write(self) -> list[Item]:
        return [i for i in self.items if i.action != "skip"]


def targets_from_listing(infos: Iterable[FileInfo]) -> list[Target]:
    """Plain-copy targets for every source file (the source's own manifest excluded)."""
    return [Target(f.path, f.token, f.size, f.path) for f in infos if f.path != MANIFEST_PATH]


def decide(target: Target, dest: FileInfo | None, manifest: Manifest) -> Item:
    """Whether ``target`` must be written, given the destination listing and the manifest."""
    if dest is None:
        return Item(target, "copy", "missing at the destination")
    if target.size is not None and target.size != dest.size:
        return Item(target, "copy", f"size differs ({target.size} at the source, {dest.size} at the destination)")
    entry = manifest.get(target.path)
    if (
        entry is not None
        and target.token is not None
        and entry.source_token == target.token
        and entry.size == dest.size
        and entry.dest_token in (None, dest.token)
    ):
        return Item(target, "skip", "unchanged since the last mirror")
    if target.source is None:
        return Item(target, "copy", "inputs changed since the last mirror")
    reason = "no mirror record" if entry is None else "changed since the last mirror"
    return Item(target, "check", f"{reason}; same size, comparing sha256")


def make_plan(targets: Iterable[Target], dest: Mapping[str, FileInfo], manifest: Manifest) -> Plan:
    """Decide every target, and list destination files the source does not have."""
    items = [decide(t, dest.get(t.path), manifest) for t in targets]
    wanted = {i.path for i in items}
    extra = sorted(p for p in dest if p not in wanted and p != MANIFEST_PATH)
    items.sort(key=lambda i: (phase_of(i.path), i.path))
    return Plan(items, extra)
