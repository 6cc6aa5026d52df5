"""The ``robostore`` command line: info, ls, validate, demo, mirror, convert, cache and view."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Annotated, Literal

import typer

from robostore.backends import open_store
from robostore.cache.cli import cache_app
from robostore.cli_common import (
    DstOption,
    JsonFlag,
    SrcOption,
    StorageOption,
    fail,
    human_size,
    parse_storage_options,
)
from robostore.errors import RobostoreError
from robostore.meta import DatasetMeta
from robostore.mirror.copy import MEMORY_LIMIT, WHOLE_FILE_MAX
from robostore.mirror.report import MirrorReport
from robostore.summary import dataset_summary
from robostore.validate import ValidationReport, validate

app = typer.Typer(
    help="LeRobot v3.0 datasets on any fsspec backend: local disk, memory, s3://, gs://, hf://.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(cache_app, name="cache")


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
        fail(exc)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"dataset   {summary['url']}  ({summary['codebase_version']})")
    typer.echo(f"robot     {summary['robot_type']}")
    typer.echo(f"fps       {summary['fps']}")
    typer.echo(f"episodes  {summary['episodes']}")
    typer.echo(f"frames    {summary['frames']}  ({summary['duration_s']:.1f} s)")
    typer.echo(f"storage   {summary['files']} files, {human_size(summary['bytes'])}")
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
        fail(exc)
    if as_json:
        typer.echo(json.dumps([{"path": f.path, "size": f.size, "token": f.token} for f in files], indent=2))
        return
    for f in files:
        typer.echo(f"{f.size:>12}  {f.path}")
    typer.echo(f"{len(files)} files, {human_size(sum(f.size for f in files))}")


@app.command("validate")
def validate_command(
    url: Annotated[str, typer.Argument(help="Dataset root URL.")],
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Cut a dataset damaged by a crash back to its last consistent episode (backups kept)."
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --repair: show the plan, write nothing.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on warnings too (inconsistencies that change no value read).")
    ] = False,
    storage_option: StorageOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Check that every file the metadata names exists and agrees with it; exit 1 on problems.

    Warnings (inconsistencies that change no value read, e.g. an episode filed under the
    wrong data file) are listed but exit 0 unless --strict.
    """
    if dry_run and not repair:
        raise typer.BadParameter("--dry-run goes with --repair", param_hint="--dry-run")
    options = parse_storage_options(storage_option)
    try:
        report = validate(url, options)
        if repair and not report.ok:
            from robostore.repair import repair_dataset

            repaired = repair_dataset(url, options, dry_run=dry_run)
            after = validate(url, options) if not dry_run else report
    except RobostoreError as exc:
        fail(exc)
    if not repair or report.ok:
        _print_validation(report, as_json)
        if not report.ok or (strict and report.warnings):
            raise typer.Exit(1)
        return
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "before": {**report.model_dump(), "ok": report.ok},
                    "repair": json.loads(repaired.to_json()),
                    "after": None if dry_run else {**after.model_dump(), "ok": after.ok},
                },
                indent=2,
            )
        )
    else:
        _print_validation(report, False)
        typer.echo(repaired.summary())
        if not dry_run:
            _print_validation(after, False)
    if dry_run or not after.ok:
        raise typer.Exit(1)


def _print_validation(report: ValidationReport, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({**report.model_dump(), "ok": report.ok}, indent=2))
        return
    if report.ok:
        typer.echo(f"ok: {report.episodes} episodes, {report.frames} frames, {report.files_checked} files checked")
    else:
        typer.echo(f"{len(report.problems)} problem(s) in {report.url}:")
        for problem in report.problems:
            typer.echo(f"  - {problem}")
    if report.warnings:
        typer.echo(f"warnings ({len(report.warnings)}):")
        for problem in report.warnings:
            typer.echo(f"  - {problem}")


@app.command()
def demo(
    url: Annotated[
        str, typer.Argument(help="Where to record: a folder (default ./demo_dataset) or any dataset URL.")
    ] = "demo_dataset",
    episodes: Annotated[int, typer.Option(help="Episodes to record.")] = 3,
    seconds: Annotated[float, typer.Option(help="Length of each episode in seconds.")] = 2.0,
    fps: Annotated[int, typer.Option(help="Frames per second.")] = 30,
    size: Annotated[str, typer.Option(help="Camera frame size HEIGHTxWIDTH.")] = "96x128",
    codec: Annotated[
        Literal["libsvtav1", "libx264"], typer.Option(help="libsvtav1 (lerobot's default) or libx264.")
    ] = "libsvtav1",
    storage_option: StorageOption = None,
) -> None:
    """Record a synthetic dataset (2 cameras with a moving pattern, state, action, a few tasks), then show `info`."""
    from robostore.record import Recorder
    from robostore.record.demo import SyntheticRobot, demo_features
    from robostore.video import VideoOptions

    try:
        height, width = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HEIGHTxWIDTH, got {size!r}", param_hint="--size") from None
    options = parse_storage_options(storage_option)
    robot = SyntheticRobot(height, width)
    try:
        video = VideoOptions.h264() if codec == "libx264" else VideoOptions(codec=codec)
        with Recorder.create(
            url,
            fps=fps,
            features=demo_features(height, width),
            robot_type="robostore_demo",
            storage_options=options,
            video=video,
        ) as rec:
            for _ in range(episodes):
                index = rec.episode_index
                for i in range(max(1, round(seconds * fps))):
                    rec.add_frame(robot.frame(index, i, fps))
                rec.save_episode()
                typer.echo(f"recorded episode {index}")
    except RobostoreError as exc:
        fail(exc)
    info(url, storage_option=storage_option, as_json=False)


@app.command("mirror")
def mirror_command(
    src: Annotated[str, typer.Argument(help="Source dataset root URL.")],
    dst: Annotated[str, typer.Argument(help="Destination dataset root URL.")],
    episodes: Annotated[
        str | None, typer.Option("--episodes", help="Copy only these episodes as a smaller dataset, e.g. 0-99,200.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Transfers in flight.")] = 16,
    memory_limit_mb: Annotated[
        int, typer.Option("--memory-limit-mb", min=1, help="MiB of file content held at once by whole-file transfers.")
    ] = MEMORY_LIMIT >> 20,
    whole_file_max_mb: Annotated[
        int, typer.Option("--whole-file-max-mb", min=0, help="Files up to this many MiB move in one GET and one PUT.")
    ] = WHOLE_FILE_MAX >> 20,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only: print what would be copied.")] = False,
    delete: Annotated[bool, typer.Option("--delete", help="Remove destination files the source lacks.")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip reading written files back.")] = False,
    no_check: Annotated[
        bool,
        typer.Option(
            "--no-check", help="Copy the source even if it does not validate (e.g. a backup before --repair)."
        ),
    ] = False,
    src_option: SrcOption = None,
    dst_option: DstOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy a dataset between backends: only what differs, metadata last; exit 1 if files failed."""
    from robostore.mirror import mirror

    try:
        report = mirror(
            src,
            dst,
            episodes=episodes,
            workers=workers,
            whole_file_max=whole_file_max_mb << 20,
            memory_limit=memory_limit_mb << 20,
            verify=not no_verify,
            check=not no_check,
            delete=delete,
            dry_run=dry_run,
            src_options=parse_storage_options(src_option),
            dst_options=parse_storage_options(dst_option),
            progress=not as_json and sys.stderr.isatty(),
        )
    except RobostoreError as exc:
        fail(exc)
    if not as_json and dry_run:
        for path in report.planned:
            typer.echo(f"would copy  {path}")
        for path in report.extra:
            typer.echo(f"{'would delete' if delete else 'extra'}  {path}")
    _finish_copy_report(report, as_json)


@app.command("convert")
def convert_command(
    src: Annotated[str, typer.Argument(help="The LeRobot v2.1 dataset (any backend).")],
    dst: Annotated[str, typer.Argument(help="Where the v3.0 dataset goes (any backend).")],
    data_mb: Annotated[
        float, typer.Option("--data-mb", help="Size limit of each data file, MiB (lerobot's measure).")
    ] = 100,
    video_mb: Annotated[float, typer.Option("--video-mb", help="Size limit of each mp4, MiB.")] = 200,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Files written at the same time.")] = 8,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only: print what would be written.")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip reading written files back.")] = False,
    no_check: Annotated[bool, typer.Option("--no-check", help="Skip validating the source first.")] = False,
    src_option: SrcOption = None,
    dst_option: DstOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Convert a LeRobot v2.1 dataset to v3.0: videos joined by stream copy, resumable, metadata last."""
    from robostore.convert import convert

    try:
        report = convert(
            src,
            dst,
            data_mb=data_mb,
            video_mb=video_mb,
            workers=workers,
            verify=not no_verify,
            check=not no_check,
            dry_run=dry_run,
            src_options=parse_storage_options(src_option),
            dst_options=parse_storage_options(dst_option),
            progress=not as_json and sys.stderr.isatty(),
        )
    except RobostoreError as exc:
        fail(exc)
    if not as_json and dry_run:
        for path in report.planned:
            typer.echo(f"would write  {path}")
    _finish_copy_report(report, as_json)


def _finish_copy_report(report: MirrorReport, as_json: bool) -> None:
    """The end of a mirror or convert report: the JSON document, or failures and the summary;
    exit 1 when files failed."""
    if as_json:
        typer.echo(report.to_json())
    else:
        for path, why in report.failed.items():
            typer.echo(f"failed  {path}: {why}", err=True)
        typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@app.command("view")
def view_command(
    url: Annotated[str, typer.Argument(help="Dataset root URL.")],
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 0,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. The default serves this machine only; 0.0.0.0 shares it on the network."
        ),
    ] = "127.0.0.1",
    storage_option: StorageOption = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser window.")] = False,
) -> None:
    """Look at a dataset in the browser: episodes, camera videos in sync, state/action plots."""
    try:
        from robostore.view.server import address, bind, run
    except ImportError as exc:
        typer.secho(
            f"error: the viewer needs the view extra: pip install 'robostore[view]' ({exc})",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(2) from None
    try:
        store = open_store(url, parse_storage_options(storage_option))
    except RobostoreError as exc:
        fail(exc)
    try:
        DatasetMeta.open(store)
    except RobostoreError as exc:
        # Keep serving: the pages show the same error, and the dataset may be fixed meanwhile.
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    try:
        sock = bind(host, port)
    except OSError as exc:
        typer.secho(f"error: cannot listen on {host}:{port}: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    where = address(sock)
    typer.echo(f"robostore view: {store.url} at {where}  (Ctrl-C stops)")
    if not no_browser:
        import webbrowser

        webbrowser.open(where)
    run(store, None, sock)


def main() -> None:
    """Entry point of the ``robostore`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # SVT-AV1 prints its configuration to stderr for every encoder; errors only, please.
    os.environ.setdefault("SVT_LOG", "1")
    app(prog_name="robostore")


if __name__ == "__main__":
    main()
