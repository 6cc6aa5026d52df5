"""What every ``robostore`` command shares: option parsing, errors, sizes.

``robostore.cli`` and the sub-apps it mounts (``robostore.cache.cli``) import from here,
never from each other.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer

from robostore.errors import RobostoreError, SchemaError
from robostore.selection import parse_episodes

StorageOption = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option",
        "-o",
        help="KEY=VALUE passed to the fsspec filesystem (repeatable); VALUE is parsed as JSON when it can be.",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print a JSON document instead of text.")]
SrcOption = Annotated[
    list[str] | None, typer.Option("--src-option", help="KEY=VALUE storage option of the source (repeatable).")
]
DstOption = Annotated[
    list[str] | None, typer.Option("--dst-option", help="KEY=VALUE storage option of the destination (repeatable).")
]


def parse_storage_options(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into storage options; values are JSON when they parse."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--storage-option")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def episodes_option(text: str | None, param_hint: str = "--episodes") -> list[int] | None:
    """An ``--episodes`` value (``"0,3,5-9"``) as sorted indices; None (all) stays None."""
    if text is None:
        return None
    try:
        return parse_episodes(text)
    except SchemaError as exc:
        raise typer.BadParameter(str(exc), param_hint=param_hint) from None


def fail(exc: RobostoreError) -> NoReturn:
    """Print ``exc`` and exit with status 2."""
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


def human_size(n: float) -> str:
    """``1536`` -> ``"1.5 KB"``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


__all__ = ["JsonFlag", "StorageOption", "episodes_option", "fail", "human_size", "parse_storage_options"]
