"""The ``dbsnaplake`` command: a thin layer over :mod:`dbsnaplake.api`.

Every command calls the library; one handler turns a :class:`DbSnapLakeError` into a one-line message on
stderr and exit code 1. Progress bars and notes go to stderr, results to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

from . import __version__, storage
from .compaction_planner import plan_compaction
from .compactor import compact_group
from .config import DEFAULT_RETRIES, INSPECT_MODES, PUBLISH_MODES, PipelineConfig, default_workers
from .demo import prepare_demo
from .errors import ConfigError, DbSnapLakeError
from .etl import run_etl_group
from .executors import EXECUTORS, make_executor
from .location import S3Location
from .multi_table import run_source
from .pipeline import publish_snapshot, run_pipeline
from .planner import plan_snapshot
from .publish import list_versions, remove_old_versions, remove_version_folder
from .readers import ON_BAD_VALUE
from .run_lock import run_lock
from .sorting import parse_sort_keys
from .sources import DynamoDBOptions, write_source_manifests
from .status import run_status
from .table_config import folder_options, load_config, run_value, source_run_config
from .units import format_size, parse_size
from .validator import validate_datalake

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True)
console = Console(markup=False)  # results print as they are: paths and values may hold [brackets]


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
        self._bar.console.print(f"[dim]{escape(message)}[/dim]")


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DbSnapLakeError as exc:
            err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            _exit(1)
        except KeyboardInterrupt:
            err_console.print("interrupted: rerun the same command to resume")
            _exit(130)
        except Exception as exc:
            if not _is_storage_error(exc):
                raise  # a bug: the traceback is what a report needs
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            err_console.print(
                f"[bold red]error:[/bold red] storage request failed after retries: {escape(first_line)} — check the "
                "path, the credentials (AWS_*) and AWS_ENDPOINT_URL, then rerun to resume",
                highlight=False,
                soft_wrap=True,
            )
            _exit(1)


def _exit(code: int) -> NoReturn:
    """Exit at once, once the error is printed: every pool and lock was released on the way out. Skipping the
    interpreter's teardown avoids a rare abort ("terminate called without an active exception") when native
    thread pools (Arrow, Polars, obstore) are torn down while still busy, which turned exit code 1 into -6."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _is_storage_error(exc: BaseException) -> bool:
    """S3 (obstore) and file system errors: the user's environment, not a bug."""
    return isinstance(exc, OSError) or type(exc).__module__.startswith("obstore")


def _size(_: click.Context, __: click.Parameter, value: str | None) -> int | None:
    return None if value is None else parse_size(value)


def pipeline_options(function: F) -> F:
    """The options every stage shares, so ``run`` and each single stage take the same flags."""
    options = [
        click.option("--staging", default=None, help="Staging root: state, manifests and staging lake [required]."),
        click.option("--datalake", default=None, help="Root of the final data lake [required]."),
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
            "--publish",
            type=click.Choice(PUBLISH_MODES),
            default="historical",
            show_default=True,
            help="historical: DATALAKE is this snapshot's own folder, committed by _SUCCESS; latest: DATALAKE is a "
            "static path, each snapshot goes to version=<time>/ and _latest.json is switched to it.",
        ),
        click.option(
            "--snapshot-time",
            default=None,
            help="When the snapshot was taken (ISO 8601); names the version [the staging path's snapshot=..., or now].",
        ),
        click.option(
            "--retries",
            default=DEFAULT_RETRIES,
            show_default=True,
            type=int,
            help="Retries of a failed group (exponential backoff) before the run stops.",
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
    staging: str | None,
    datalake: str | None,
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
    publish: str = "historical",
    snapshot_time: str | None = None,
    retries: int = DEFAULT_RETRIES,
    **_: Any,
) -> PipelineConfig:
    if not staging or not datalake:
        raise ConfigError(f"missing option {'--staging' if not staging else '--datalake'}: pass the folder to use")
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
        publish=publish,
        snapshot_time=snapshot_time,
        retries=retries,
    )


def _print_json(result: Any) -> None:
    click.echo(json.dumps(dataclasses.asdict(result), indent=2, default=str))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)
def main() -> None:
    """Turn a database snapshot export into a hive-partitioned, compacted, validated Parquet data lake.

    Start with 'dbsnaplake demo'. Stages: plan → etl → plan-compaction → compact → validate; 'run' does all.
    """


def _run(config: PipelineConfig, executor: str, fresh: bool = False) -> None:
    with RichProgress() as progress, make_executor(executor, config.workers) as pool:
        result = run_pipeline(config, pool, progress, fresh=fresh)
    console.print(str(result), highlight=False)
    console.print(f"data lake : {result.plan.version_root}", highlight=False)


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


FOLDER_FLAGS = (
    "table_name",
    "csv_delimiter",
    "csv_header",
    "csv_column_names",
    "csv_column_types",
    "count_text_records",
    "dynamodb_maps",
)


def folder_source_options(function: F) -> F:
    """Options for a folder of data files as a source (``manifest build``, ``run --source``)."""
    options = [
        click.option("--table-name", default=None, help="A folder source's database.table [parent folder.folder]."),
        click.option("--csv-delimiter", default=None, help="CSV delimiter; \\t for TAB [inferred: , TAB ; |]."),
        click.option(
            "--csv-header/--csv-no-header", default=None, help="CSV files start with a header row [inferred]."
        ),
        click.option(
            "--csv-column-names", default=None, help="CSV column names, comma-separated (replace the header)."
        ),
        click.option("--csv-column-types", default=None, help="Some CSV column types: id=int64,price=decimal(12,2)."),
        click.option(
            "--count-text-records/--no-count-text-records",
            default=None,
            help="Read text files to count records now [yes], or let the ETL stage count them as it reads them.",
        ),
        click.option(
            "--dynamodb-maps",
            type=click.Choice(["struct", "json"]),
            default=None,
            help="A DynamoDB export's map attributes (M): a struct of the keys seen, or JSON text [struct].",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _folder_flags(options: dict[str, Any]) -> dict[str, Any]:
    """Pop the folder-source flags out of ``options``: those given, checked and converted."""
    given = {key: options.pop(key) for key in FOLDER_FLAGS}
    return {k: run_value(k, v, "--" + k.replace("_", "-")) for k, v in given.items() if v is not None}


def _run_source(
    source: str | None, config_file: str | None, only: str | None, fresh: bool, folder: dict[str, Any], **options: Any
) -> None:
    """``run --source`` / ``run --config``: flags given on the command line override the config file's."""
    if options["manifest"] is not None:
        raise ConfigError(
            "--manifest and --source/--config are mutually exclusive: --manifest runs an existing manifest, "
            "--source builds the manifests from the snapshot — pass one of them"
        )
    ctx = click.get_current_context()

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)

    run_keys = ["staging", "datalake", "executor", "workers", "worker_memory", "group_size", "target_file_size"]
    run_keys += ["inspect_files", "on_bad_value", "publish", "retries", "snapshot_time"]
    flags = {key: options[key] for key in run_keys if given(key)}
    flags.update({"source": source} if source else {}, **folder)
    if only:
        flags["only"] = run_value("only", only, "--only")
    table_flags = {"partition_by", "sort_by", "transform", "target_file_size", "group_size"}
    tables = {key: options[key] for key in table_flags if given(key)}
    if "partition_by" in tables:
        tables["partition_by"] = tuple(c.strip() for c in tables["partition_by"].split(",") if c.strip())
    if "sort_by" in tables:
        tables["sort_by"] = parse_sort_keys(tables["sort_by"])
    config = source_run_config(load_config(config_file) if config_file else None, flags, tables)
    with RichProgress() as progress, make_executor(config.executor, config.workers) as pool:
        result = run_source(config, pool, progress, fresh)
    console.print(str(result), highlight=False)
    if not result.ok:
        err_console.print(
            f"[bold red]error:[/bold red] table(s) {', '.join(result.failed)} failed (see above); rerun with "
            f"--only {','.join(result.failed)} once fixed",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


@main.command()
@pipeline_options
@click.option(
    "--source",
    default=None,
    help="Snapshot to build the manifest(s) from: a folder of data files, an RDS/Aurora export or a DynamoDB export.",
)
@click.option(
    "--config", "config_file", default=None, help='TOML settings: source, roots, [tables."db.table"] sections.'
)
@click.option("--only", default=None, help="With --source: the tables to run, comma-separated (default: all).")
@folder_source_options
@click.option(
    "--executor",
    default="process",
    show_default=True,
    help=f"Where groups run: {', '.join(EXECUTORS)} (a Dask scheduler; needs the dask extra).",
)
@click.option("--fresh", is_flag=True, help="Discard what earlier runs did in this staging area; start over.")
def run(
    executor: str, fresh: bool, source: str | None, config_file: str | None, only: str | None, **options: Any
) -> None:
    """Run (or resume) every stage over a worker pool: local processes by default, or a Dask cluster.

    A rerun after a crash or a failure resumes: finished groups are skipped, and the data lake is published
    (committed) only once it is complete and validated.

    With --source (or a --config file naming one) the manifests are built first: a folder of data files is one
    table (STAGING and DATALAKE as given); an export's tables each get DATALAKE/<database>/<table>/ and
    STAGING/<database>/<table>/snapshot=<time>/, and run one after another.

    Example: dbsnaplake run --manifest s3://b/p/manifest-summary.json --staging s3://b/staging/db/t/snapshot=2024-01-01/
    --datalake s3://b/datalake/db/t/ --partition-by year --sort-by order_time
    --transform "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year FROM snapshot"

    Example: dbsnaplake run --source s3://b/exports/export-2024-01-01/ --staging s3://b/staging/ --datalake s3://b/datalake/

    Example: dbsnaplake run --config dbsnaplake.toml --only mydb.public.orders
    """
    folder = _folder_flags(options)
    if source is not None or config_file is not None:
        _run_source(source, config_file, only, fresh, folder, executor=executor, **options)
        return
    if only or folder:
        raise ConfigError("--only, --table-name, --csv-* and --count-text-records go with --source (or --config)")
    _run(_config(**options), executor, fresh)


@main.command()
@pipeline_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan(output: str, **options: Any) -> None:
    """Stage 1: inspect the snapshot and write one manifest per snapshot file group.

    Example: dbsnaplake plan --staging ./staging --datalake ./lake --output json
    """
    config = _config(**options)
    with run_lock(config.location), RichProgress() as progress:
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
    config = _config(**options)
    with run_lock(config.location), RichProgress() as progress:
        result = plan_compaction(config, progress)
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


@main.command("publish")
@pipeline_options
def publish_command(**options: Any) -> None:
    """Stage 6: validate, then publish the data lake atomically (_SUCCESS, and _latest.json with --publish latest).

    'run' does this itself; external orchestrators call it after the last compact group.
    Example: dbsnaplake publish --staging ./staging --datalake ./lake
    """
    with RichProgress() as progress:
        result = publish_snapshot(_config(**options), progress)
    console.print(str(result or "already published by an earlier run"), highlight=False)


@main.command()
@click.option("--staging", required=True, help="Staging root of the run.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status(staging: str, output: str) -> None:
    """Where a run stands: per stage, planned / done / failed groups, bytes, records, and each failed group's error.

    Example: dbsnaplake status --staging s3://b/staging/db/t/snapshot=2024-01-01T00:00:00Z/ --output json
    """
    result = run_status(staging)
    if output == "json":
        click.echo(result.to_json())
    else:
        console.print(str(result), highlight=False, soft_wrap=True)


@main.group()
def versions() -> None:
    """Published versions of a data lake: list them, remove old ones."""


@versions.command("list")
@click.option("--datalake", required=True, help="A --publish latest data lake (static path).")
def versions_list(datalake: str) -> None:
    """List the version folders of a latest-only data lake, oldest first; * marks the current one."""
    for v in list_versions(datalake):
        mark = "*" if v.current else " "
        state = "committed" if v.committed else "uncommitted"
        console.print(f"{mark} {v.root}  {state}, {v.n_file:,} files, {format_size(v.size)}", highlight=False)


@versions.command("remove")
@click.option("--datalake", default=None, help="A --publish latest data lake: remove its old versions.")
@click.option(
    "--keep", default=1, show_default=True, type=int, help="Committed versions to keep, the current one included."
)
@click.option("--version", "version_root", default=None, help="Remove this one version folder (a historical snapshot).")
def versions_remove(datalake: str | None, keep: int, version_root: str | None) -> None:
    """Remove old versions. The current version of a latest-only lake is never removed.

    Examples: dbsnaplake versions remove --datalake s3://b/datalake/db/orders/ --keep 2;
    dbsnaplake versions remove --version s3://b/datalake/db/orders_2021_01_01_08_30_00/
    """
    if (datalake is None) == (version_root is None):
        raise ConfigError("give either --datalake (remove old versions) or --version (remove one folder)")
    if version_root is not None:
        count = remove_version_folder(storage.as_dir(version_root))
        console.print(f"removed {version_root} ({count:,} objects)", highlight=False)
        return
    assert datalake is not None
    for v in remove_old_versions(datalake, keep):
        console.print(f"removed {v.root} ({v.n_file:,} files, {format_size(v.size)})", highlight=False)


DEFAULT_MANIFEST_FOLDER = "./dbsnaplake-manifests/"


@main.group()
def manifest() -> None:
    """Snapshot manifests."""


@manifest.command("build")
@click.argument("source")
@click.option(
    "--out",
    default=DEFAULT_MANIFEST_FOLDER,
    show_default=True,
    help="A folder: each table's manifest goes to OUT/<database>/<table>/manifest-summary.json (data Parquet "
    "beside it). For a folder of files, OUT may also be the summary JSON path itself.",
)
@folder_source_options
def manifest_build(source: str, out: str, **options: Any) -> None:
    """Detect what SOURCE holds (an RDS/Aurora export, a DynamoDB export, or a folder of Parquet, CSV, NDJSON
    or JSON files) and write its snapshot manifest(s).

    Example: dbsnaplake manifest build s3://bucket/exports/mydb-2024-08-01/ --out s3://bucket/manifests/
    """
    flags = _folder_flags(options)
    dynamodb = DynamoDBOptions(flags.pop("dynamodb_maps", "struct"))
    with RichProgress() as progress:
        result = write_source_manifests(source, out, progress, folder_options(flags), dynamodb)
    console.print(str(result), highlight=False)


if __name__ == "__main__":  # pragma: no cover
    main()
