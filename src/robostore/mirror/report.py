"""The result of a mirror run: what was copied, skipped, deleted or failed, and how fast."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field


class MirrorReport(BaseModel):
    """Summary of :func:`robostore.mirror`.

    ``copied``/``skipped``/``deleted``/``failed`` list destination paths. With
    ``dry_run`` nothing is written and ``planned`` lists what would be copied.
    ``extra`` lists destination files that the source does not have (deleted only with
    ``delete=True``). Throughput is copied bytes over the whole run time.
    """

    source: str
    destination: str
    dry_run: bool = False
    subset: list[int] | None = None
    copied: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    planned: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    extra: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
    recopied_after_verify: list[str] = Field(default_factory=list)
    bytes_copied: int = 0
    bytes_planned: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every file made it (no failures)."""
        return not self.failed

    @property
    def throughput_mb_s(self) -> float:
        """Copied megabytes (10^6 bytes) per second of run time."""
        return self.bytes_copied / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (for ``robostore mirror --json`` and scripts)."""
        data = self.model_dump(mode="json")
        data["ok"] = self.ok
        data["throughput_mb_s"] = round(self.throughput_mb_s, 3)
        return json.dumps(data, indent=indent)

    def summary(self) -> str:
        """One line for humans."""
        verb = "would copy" if self.dry_run else "copied"
        files = len(self.planned) if self.dry_run else len(self.copied)
        size = self.bytes_planned if self.dry_run else self.bytes_copied
        text = (
            f"{self.source} -> {self.destination}: {verb} {files} files ({size / 1e6:.1f} MB), "
            f"skipped {len(self.skipped)}, deleted {len(self.deleted)}, failed {len(self.failed)} "
            f"in {self.seconds:.2f} s"
        )
        if not self.dry_run and self.bytes_copied:
            text += f" ({self.throughput_mb_s:.1f} MB/s)"
        if self.extra and not self.deleted:
            text += f"; {len(self.extra)} destination files are not in the source (--delete removes them)"
        return text
