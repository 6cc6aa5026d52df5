"""The ``robostore`` command line: info, ls, validate (and the commands of later layers)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any

import typer

from robostore.backends import open_store
from robostore.cache.cli import cache_app
from robostore.errors import RobostoreError
from robostore.meta import DatasetMeta
from robostore.validate import validate

app = typer.Typer(
    help="LeRobot v3.0 datasets on any fsspec backend: local disk, memory, s3://, gs://, hf://.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(cache_app, name="cache")

StorageOption = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option",
        "-o",
        help="KEY=VALUE passed to the fsspec filesystem (repeatable); VALUE is parsed as JSON when it can be.",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print a JSON document instead of text.")]


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


def _fail(exc: RobostoreError) -> None:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def dataset_summary(meta: DatasetMeta, with_files: bool = True) -> dict[str, Any]:
    """What ``robostore info`` shows, as a dict."""
    info = meta.info
    summary: dict[str, Any] = {
        "url": meta.url,
        "codebase_version": info.codebase_version,
        "robot_type": info.robot_type,
        "fps": info.fps,
        "episodes": info.total_episodes,
        "frames": info.total_frames,
        "duration_s": round(info.total_frames / info.fps, 3),
        "features": {
            key: {"dtype": f.dtype, "shape": list(f.shape), "names": f.names} for key, f in info.features.items()
        },
        "tasks": meta.tasks,
    }
    if with_files:
        files = meta.store.list_info("data") + meta.store.list_info("videos") + meta.store.list_info("meta")
        summary["files"] = len(files)
        summary["bytes"] = sum(f.size for f in files)
    return summary


@app.command()
def info(
    url: Annotated[str, typer.Argument(help="Dataset root: a folder, file://, memory://, s3://, gs://, hf://...")],
    storage_option: StorageOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a dataset's fps, robot, episodes, frames, features, tasks and size on storage."""
    try:
        meta = DatasetMeta.open(url, parse_storage_options(storage_option))
        summary = dataset_summary(meta)
    except RobostoreError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"dataset   {summary['url']}  ({summary['codebase_version']})")
    typer.echo(f"robot     {summary['robot_type']}")
    typer.echo(f"fps       {summary['fps']}")
    typer.echo(f"episodes  {summary['episodes']}")
    typer.echo(f"frames    {summary['frames']}  ({summary['duration_s']:.1f} s)")
    typer.echo(f"storage   {summary['files']} files, {_human(summary['bytes'])}")
    typer.echo("features")
    width = max(len(k) for k in summary["features"])
    for key, f in summary["features"].items():
        typer.echo(f"  {key:<{width}}  {f['dtype']:<8} {f['shape']}")
    typer.echo(f"tasks ({len(summary['tasks'])})")
    for i, task in enumerate(summary["tasks"]):
        typer.echo(f"  {i:>3}  {task}")


@app.command()
def ls(
    url: Annotated[str, typer.Argument(help="Dataset root URL.")],
    prefix: Annotated[str, typer.Option(help="Only files under this folder of the dataset.")] = "",
    storage_option: StorageOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List the files of a dataset with their sizes."""
    try:
        files = open_store(url, parse_storage_options(storage_option)).list_info(prefix)
    except RobostoreError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps([{"path": f.path, "size": f.size, "token": f.token} for f in files], indent=2))
        return
    for f in files:
        typer.echo(f"{f.size:>12}  {f.path}")
    typer.echo(f"{len(files)} files, {_human(sum(f.size for f in files))}")


@app.command("validate")
def validate_command(
    url: Annotated[str, typer.Argument(help="Dataset root URL.")],
    storage_option: StorageOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Check that every file the metadata names exists and agrees with it; exit 1 on problems."""
    try:
        report = validate(url, parse_storage_options(storage_option))
    except RobostoreError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps({**report.model_dump(), "ok": report.ok}, indent=2))
    elif report.ok:
        typer.echo(f"ok: {report.episodes} episodes, {report.frames} frames, {report.files_checked} files checked")
    else:
        typer.echo(f"{len(report.problems)} problem(s) in {report.url}:")
        for problem in report.problems:
            typer.echo(f"  - {problem}")
    if not report.ok:
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the ``robostore`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app(prog_name="robostore")


if __name__ == "__main__":
    sys.exit(main())
