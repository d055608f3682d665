"""The ``dbsnaplake`` command: a thin layer over :mod:`dbsnaplake.api`.

Every command calls the library; one handler turns a :class:`DbSnapLakeError` into a one-line message on
stderr and exit code 1. Progress bars and notes go to stderr, results to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

from . import __version__
from .compaction_planner import plan_compaction
from .compactor import compact_group
from .config import INSPECT_MODES, PipelineConfig, default_workers
from .demo import prepare_demo
from .errors import DbSnapLakeError
from .etl import run_etl_group
from .executors import EXECUTORS, make_executor
from .location import S3Location
from .manifest_builder import build_manifest
from .pipeline import run_pipeline
from .planner import plan_snapshot
from .readers import ON_BAD_VALUE
from .sorting import parse_sort_keys
from .units import parse_size
from .validator import validate_datalake

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True)
console = Console()


class RichProgress:
    """Draws one progress bar per task on stderr (hidden when stderr is not a terminal)."""

    def __init__(self) -> None:
        self._bar = RichBar(
            TextColumn("{task.description:<36}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start(self, task: str, total: int) -> None:
        self._task = self._bar.add_task(task, total=total)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, steps)

    def note(self, message: str) -> None:
        self._bar.console.print(f"[dim]{message}[/dim]")


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DbSnapLakeError as exc:
            err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)


def _size(_: click.Context, __: click.Parameter, value: str | None) -> int | None:
    return None if value is None else parse_size(value)


def pipeline_options(function: F) -> F:
    """The options every stage shares, so ``run`` and each single stage take the same flags."""
    options = [
        click.option("--staging", required=True, help="Staging root: state, manifests and staging lake."),
        click.option("--datalake", required=True, help="Root of the final data lake."),
        click.option(
            "--manifest",
            default=None,
            help="Snapshot manifest summary JSON (default: STAGING/manifests/manifest-summary.json).",
        ),
        click.option("--partition-by", default="", help="Partition columns, comma-separated: year,month."),
        click.option("--sort-by", default="", help="Sort keys: col or col:desc, comma-separated."),
        click.option("--transform", default=None, help="Polars SQL over table 'snapshot', or module:function."),
        click.option("--group-size", default=None, callback=_size, help="Max snapshot bytes per ETL group: 256MB."),
        click.option("--target-file-size", default="128MB", callback=_size, help="Data lake file size [128MB]."),
        click.option("--workers", default=default_workers(), show_default=True, type=int, help="Worker processes."),
        click.option("--worker-memory", default=None, callback=_size, help="Memory per worker [60% RAM / workers]."),
        click.option(
            "--inspect-files",
            type=click.Choice(INSPECT_MODES),
            default="auto",
            show_default=True,
            help="Snapshot files 'plan' checks: all, a sample of 1,000, none; auto = all up to 10,000 files.",
        ),
        click.option(
            "--on-bad-value",
            type=click.Choice(ON_BAD_VALUE),
            default="error",
            show_default=True,
            help="A value that does not parse as its exported type: stop with an error, or store null and count it.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _config(
    staging: str,
    datalake: str,
    manifest: str | None,
    partition_by: str,
    sort_by: str,
    transform: str | None,
    group_size: int | None,
    target_file_size: int,
    workers: int,
    worker_memory: int | None,
    inspect_files: str = "auto",
    on_bad_value: str = "error",
    **_: Any,
) -> PipelineConfig:
    return PipelineConfig(
        location=S3Location(s3uri_staging=staging, s3uri_datalake=datalake),
        snapshot_manifest=manifest,
        partition_by=tuple(c.strip() for c in partition_by.split(",") if c.strip()),
        sort_by=parse_sort_keys(sort_by),
        transform=transform,
        group_size=group_size,
        target_file_size=target_file_size,
        workers=workers,
        worker_memory=worker_memory,
        inspect_files=inspect_files,
        on_bad_value=on_bad_value,
    )


def _print_json(result: Any) -> None:
    click.echo(json.dumps(dataclasses.asdict(result), indent=2, default=str))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)
def main() -> None:
    """Turn a database snapshot export into a hive-partitioned, compacted, validated Parquet data lake.

    Start with 'dbsnaplake demo'. Stages: plan → etl → plan-compaction → compact → validate; 'run' does all.
    """


def _run(config: PipelineConfig, executor: str) -> None:
    with RichProgress() as progress, make_executor(executor, config.workers) as pool:
        result = run_pipeline(config, pool, progress)
    console.print(str(result), highlight=False)
    console.print(f"data lake : {config.location.s3dir_datalake}", highlight=False)


@main.command()
@click.option("--dir", "root", default="./dbsnaplake-demo", show_default=True, help="Where the demo writes.")
@click.option("--workers", default=default_workers(), show_default=True, type=int)
@click.option(
    "--executor",
    default="process",
    show_default=True,
    help=f"Where groups run: {', '.join(EXECUTORS)} (a Dask scheduler; needs the dask extra).",
)
def demo(root: str, workers: int, executor: str) -> None:
    """Generate a sample orders snapshot (~200 Parquet files, ~150 MB) and run every stage on it.

    Example: dbsnaplake demo --dir /tmp/demo
    """
    with RichProgress() as progress:
        config = prepare_demo(root, workers, progress)
    _run(config, executor)


@main.command()
@pipeline_options
@click.option(
    "--executor",
    default="process",
    show_default=True,
    help=f"Where groups run: {', '.join(EXECUTORS)} (a Dask scheduler; needs the dask extra).",
)
def run(executor: str, **options: Any) -> None:
    """Run all five stages over a worker pool: local processes by default, or a Dask cluster.

    Example: dbsnaplake run --manifest s3://b/p/manifest-summary.json --staging s3://b/staging/db/t/snapshot=2024-01-01/
    --datalake s3://b/datalake/db/t/ --partition-by year --sort-by order_time
    --transform "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year FROM snapshot"
    """
    _run(_config(**options), executor)


@main.command()
@pipeline_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan(output: str, **options: Any) -> None:
    """Stage 1: inspect the snapshot and write one manifest per snapshot file group.

    Example: dbsnaplake plan --staging ./staging --datalake ./lake --output json
    """
    config = _config(**options)
    with RichProgress() as progress:
        result = plan_snapshot(config, progress)
    if output == "json":
        click.echo(json.dumps(list(result.group_manifests)))
    else:
        console.print(str(result), highlight=False)


@main.command()
@pipeline_options
@click.option("--group-manifest", required=True, help="A snapshot file group's manifest-summary-N.json.")
def etl(group_manifest: str, **options: Any) -> None:
    """Stage 2: ETL one snapshot file group into the staging lake; prints a JSON result.

    Example: dbsnaplake etl --staging ./staging --datalake ./lake
    --group-manifest ./staging/manifests/snapshot-file-groups/manifest-summary/manifest-summary-1.json
    """
    _print_json(run_etl_group(_config(**options), group_manifest))


@main.command("plan-compaction")
@pipeline_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan_compaction_command(output: str, **options: Any) -> None:
    """Stage 3: pack staging files into partition file groups of about the target size.

    Example: dbsnaplake plan-compaction --staging ./staging --datalake ./lake
    """
    with RichProgress() as progress:
        result = plan_compaction(_config(**options), progress)
    if output == "json":
        click.echo(json.dumps(list(result.group_manifests)))
    else:
        console.print(str(result), highlight=False)


@main.command()
@pipeline_options
@click.option("--group-manifest", required=True, help="A partition file group's manifest-summary-N.json.")
def compact(group_manifest: str, **options: Any) -> None:
    """Stage 4: compact one partition file group into the data lake; prints a JSON result.

    Example: dbsnaplake compact --staging ./staging --datalake ./lake
    --group-manifest ./staging/manifests/partition-file-groups/manifest-summary/manifest-summary-1.json
    """
    _print_json(compact_group(_config(**options), group_manifest))


@main.command()
@pipeline_options
def validate(**options: Any) -> None:
    """Stage 5: compare the data lake with the snapshot (files, bytes, records, per partition).

    Exits 1 when records do not match. Example: dbsnaplake validate --staging ./staging --datalake ./lake
    """
    with RichProgress() as progress:
        result = validate_datalake(_config(**options), progress)
    console.print(str(result), highlight=False)


@main.group()
def manifest() -> None:
    """Snapshot manifests."""


@manifest.command("build")
@click.argument("source")
@click.option("--out", required=True, help="Where to write the manifest summary JSON (data Parquet goes beside it).")
def manifest_build(source: str, out: str) -> None:
    """Write a snapshot manifest for a folder or S3 prefix of Parquet, CSV or NDJSON files.

    Example: dbsnaplake manifest build s3://bucket/exports/orders/ --out s3://bucket/staging/manifests/manifest-summary.json
    """
    with RichProgress() as progress:
        result = build_manifest(source, out, progress)
    console.print(str(result), highlight=False)


if __name__ == "__main__":  # pragma: no cover
    main()
