"""``robostore cache warm | info | clear`` (a typer sub-app mounted by ``robostore.cli``).

Loads nothing heavy at import: zarr, numcodecs and PyAV are imported when a command runs.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from robostore.cli_common import JsonFlag, episodes_option, fail, human_size, parse_storage_options
from robostore.errors import RobostoreError

cache_app = typer.Typer(
    help="The Zarr frame cache: decoded video frames kept for later epochs (local folder or any fsspec URL).",
    no_args_is_help=True,
)

CacheOption = Annotated[
    list[str] | None,
    typer.Option("--cache-option", help="KEY=VALUE for the cache's fsspec filesystem (repeatable)."),
]


def _open(path: str, options: list[str] | None, **kwargs: Any) -> Any:
    from robostore.cache import FrameCache

    return FrameCache(path, parse_storage_options(options), **kwargs)


@cache_app.command("warm")
def warm_command(
    url: Annotated[str, typer.Argument(help="Dataset root URL.")],
    cache: Annotated[str, typer.Option("--cache", help="Cache location: a folder or an fsspec URL.")],
    episodes: Annotated[str | None, typer.Option(help="Episodes to cache, e.g. 0,3,5-9 (default: all).")] = None,
    workers: Annotated[int | None, typer.Option(help="Decoding processes (default: the CPU count).")] = None,
    storage_option: Annotated[
        list[str] | None, typer.Option("--storage-option", "-o", help="KEY=VALUE for the dataset's filesystem.")
    ] = None,
    cache_option: CacheOption = None,
    compression: Annotated[
        str, typer.Option(help="none (fastest reads) or lz4 (~7% smaller), for arrays this run creates.")
    ] = "none",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Decode the dataset's videos into the cache ahead of training, in parallel."""
    try:
        report = _open(cache, cache_option, compression=compression).warm(
            url, episodes_option(episodes), workers, parse_storage_options(storage_option), progress=progress
        )
    except RobostoreError as exc:
        fail(exc)
    typer.echo(
        f"{report.filled} shards filled, {report.already_cached} already cached, {report.skipped} skipped "
        f"(of {report.shards}) in {report.seconds:.1f} s"
    )


@cache_app.command("info")
def info_command(
    path: Annotated[str, typer.Argument(help="Cache location.")],
    cache_option: CacheOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the cache's size, coverage per dataset and camera, and hit rate."""
    try:
        info = _open(path, cache_option).info()
    except RobostoreError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(info.to_json_dict(), indent=2))
        return
    counters = info.counters
    rate = "n/a" if info.hit_rate is None else f"{100 * info.hit_rate:.1f} %"
    typer.echo(f"cache     {info.url}")
    typer.echo(f"size      {human_size(info.bytes)} in {info.files} files")
    typer.echo(f"hit rate  {rate} ({counters['hits']} frames from the cache, {counters['misses']} decoded)")
    typer.echo(
        f"filled    {counters['filled_shards']} shards; evicted {counters['evicted_shards']}; "
        f"corrupt chunks re-decoded {counters['corrupt_chunks']}"
    )
    for dataset in info.datasets:
        attrs = dataset.attributes
        typer.echo(
            f"dataset {dataset.fingerprint}  {attrs.get('name', '?')}  ({attrs.get('total_frames', '?')} frames)"
        )
        for a in dataset.arrays:
            typer.echo(
                f"  {a.video_key}  {a.frames_cached}/{a.layout.num_frames} frames ({100 * a.coverage:.1f} %), "
                f"{a.shards_cached}/{a.layout.num_shards} shards, {human_size(a.bytes)}"
            )


@cache_app.command("clear")
def clear_command(
    path: Annotated[str, typer.Argument(help="Cache location.")],
    cache_option: CacheOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete everything in the cache (refuses locations that are not a frame cache)."""
    if not yes:
        typer.confirm(f"delete the frame cache at {path}?", abort=True)
    try:
        deleted = _open(path, cache_option).clear()
    except RobostoreError as exc:
        fail(exc)
    typer.echo(f"deleted {deleted} files")
