"""The ``dbsnaplake`` command: a thin layer over the library.

Every command calls the library; one handler turns a :class:`DbSnapLakeError` into a one-line message on stderr
and exit code 1. Progress bars and notes go to stderr, results to stdout. Options are derived from the settings'
declarations (:mod:`.options`). The library's stages load inside the commands, so ``dbsnaplake --help`` starts
without importing Arrow, Polars or the S3 client.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from dbsnaplake.cli.options import given_settings, setting_options
from dbsnaplake.cli.output import (
    Display,
    JsonOutput,
    console,
    err_console,
    print_document,
    print_error,
    print_error_document,
    print_json,
    print_result,
    progress_display,
)
from dbsnaplake.config.settings import PipelineConfig, Roots, RunSettings, SourceSettings, TableSettings
from dbsnaplake.errors import ConfigError, DbSnapLakeError, StageError, ValidationError
from dbsnaplake.records import PlanCompactionResult, PlanResult
from dbsnaplake.units import format_size
from dbsnaplake.version import __version__

if TYPE_CHECKING:
    from dbsnaplake.run.tables import MultiTableResult

PIPELINE = (Roots, RunSettings, TableSettings, PipelineConfig)
"""The settings of one table's pipeline (``--staging``, ``--workers``, ``--partition-by``, ``--manifest``, ...)."""
SOURCE_OPTIONS = ("source", "only")
DEFAULT_MANIFEST_FOLDER = "./dbsnaplake-manifests/"


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DbSnapLakeError as exc:
            print_error_document(exc)
            print_error(str(exc))
            _exit(1)
        except KeyboardInterrupt:
            err_console.print("interrupted: rerun the same command to resume")
            _exit(130)
        except OSError as exc:  # the local file system refused something outside the storage layer
            print_error_document(exc)
            print_error(f"{exc} — check the path and its permissions, then rerun to resume")
            _exit(1)


def _exit(code: int) -> NoReturn:
    """Exit at once, once the error is printed: every pool and lock was released on the way out. Skipping the
    interpreter's teardown avoids a rare abort ("terminate called without an active exception") when native
    thread pools (Arrow, Polars, obstore) are torn down while still busy, which turned exit code 1 into -6."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)
@click.option("-v", "--verbose", is_flag=True, help="Debug logs on stderr (stages, groups, retries).")
@click.option("-q", "--quiet", is_flag=True, help="Errors only on stderr: no progress, no notes.")
@click.option("--log-file", default=None, help="Also write debug logs to this file.")
def main(verbose: bool, quiet: bool, log_file: str | None) -> None:
    """Turn a database snapshot export into a hive-partitioned, compacted, validated Parquet data lake.

    Start with 'dbsnaplake demo'. Stages: plan → etl → plan-compaction → compact → validate → publish; 'run' does all.
    Progress goes to stderr: bars on a terminal, plain lines in a pipe or a CI log. Example: dbsnaplake -q run ...
    """
    Display.quiet = quiet
    configure_logging(verbose, log_file)


def configure_logging(verbose: bool, log_file: str | None) -> None:
    """Debug logs of the ``dbsnaplake`` loggers: on stderr with -v, in a file with --log-file."""
    import logging

    logger = logging.getLogger("dbsnaplake")
    form = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = []
    if verbose:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(form)
        logger.addHandler(handler)
    if handlers:
        logger.setLevel(logging.DEBUG)


F = TypeVar("F", bound=Callable[..., Any])


def output_option(function: F) -> F:
    """``--output text|json``: json prints one document on stdout (README, "Machine-readable output"), progress and
    errors still go to stderr, and an error is a JSON document too."""
    return click.option(
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text for people; json: one JSON document on stdout (progress stays on stderr).",
    )(function)


def dry_run_option(function: F) -> F:
    """``--dry-run``: read the manifest and a sample of the data, say what a run would make, write nothing."""
    return click.option(
        "--dry-run",
        is_flag=True,
        help="Read the manifest and a sample of the data; print the groups, estimated partitions, files, bytes and "
        "time; write nothing.",
    )(function)


def _json_output(command: str, output: str) -> bool:
    if output == "json":
        JsonOutput.command = command
    return output == "json"


def _pipeline_config(given: dict[str, Any]) -> PipelineConfig:
    return PipelineConfig.of(given.pop("staging", None), given.pop("datalake", None), **given)


def _planned(staging: str | None, given: dict[str, Any]) -> PipelineConfig:
    """A stage command's settings: the plan's, with the options given on top (checked against the plan)."""
    from dbsnaplake.run.pipeline import config_from_plan

    if not staging:
        raise ConfigError("missing option --staging: pass the staging folder the run was planned in")
    return config_from_plan(staging, given)


def _run_pipeline(config: PipelineConfig, fresh: bool = False, output: str = "text") -> None:
    from dbsnaplake.run.executors import make_executor
    from dbsnaplake.run.pipeline import run_pipeline

    staging = config.location.s3dir_staging
    try:
        with progress_display() as progress, make_executor(config.executor, config.workers) as pool:
            result = run_pipeline(config, pool, progress, fresh=fresh)
    except ValidationError:
        _write_report(staging)  # it shows where the data lake and the snapshot differ
        raise
    if output == "json":
        report = _write_report(staging)
        table = {"name": None, **result.to_dict(), "report": report}
        print_document("run", {"ok": result.validation.ok, "tables": [table]})
        return
    print_result(result)
    console.print(f"data lake : {result.plan.version_root}", highlight=False)
    _write_report(staging)


def _write_report(staging: str, table: str = "") -> str | None:
    """Write the run report and say where it is (on stderr when stdout carries a JSON document); returns its URI.
    The run's outcome stands whatever happens here: a report that cannot be written is a note with the command that
    retries it, not a failed run."""
    from dbsnaplake.report import write_report

    try:
        uri = write_report(staging)
    except Exception as exc:  # the data lake is written (or the run failed for its own reason): keep that outcome
        err_console.print(
            f"report    : {table}not written ({type(exc).__name__}: {exc}); "
            f"retry: dbsnaplake report --staging {staging}",
            highlight=False,
            soft_wrap=True,
        )
        return None
    shown = err_console if JsonOutput.command is not None else console
    shown.print(f"report    : {table}{uri}", highlight=False, soft_wrap=True)
    return uri


@main.command()
@click.option("--dir", "root", default="./dbsnaplake-demo", show_default=True, help="Where the demo writes.")
@setting_options(RunSettings, exclude=("inspect_files", "on_bad_value", "publish", "snapshot_time", "retries"))
def demo(root: str, **options: Any) -> None:
    """Generate a sample orders snapshot (~200 Parquet files, ~150 MB) and run every stage on it.

    Example: dbsnaplake demo --dir /tmp/demo
    """
    from dbsnaplake.demo import prepare_demo

    given = given_settings(options, RunSettings)
    with progress_display() as progress:
        config = prepare_demo(root, given.get("workers", RunSettings().workers), progress)
    _run_pipeline(dataclasses.replace(config, **given))


@main.command()
@setting_options(Roots, SourceSettings, RunSettings, TableSettings, PipelineConfig)
@click.option(
    "--config", "config_file", default=None, help='TOML settings: source, roots, [tables."db.table"] sections.'
)
@click.option("--fresh", is_flag=True, help="Discard what earlier runs did in this staging area; start over.")
@dry_run_option
@output_option
def run(config_file: str | None, fresh: bool, dry_run: bool, output: str, **options: Any) -> None:
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

    Example: dbsnaplake run --config dbsnaplake.toml --only mydb.public.orders --output json
    """
    _json_output("run", output)
    tables = given_settings(options, TableSettings)
    source = given_settings(options, SourceSettings)
    run_given = given_settings(options, Roots, RunSettings, PipelineConfig)
    if source.get("source") is not None or config_file is not None:
        if dry_run:
            raise ConfigError(
                "--dry-run goes with --manifest: build the manifest first ('dbsnaplake manifest build SOURCE'), "
                "then 'dbsnaplake run --manifest ... --dry-run'"
            )
        _run_source(config_file, fresh, source, run_given, tables, output)
        return
    if source:
        flags = ", ".join("--" + k.replace("_", "-") for k in source)
        raise ConfigError(f"{flags}: these options go with --source (or --config)")
    config = _pipeline_config({**run_given, **tables})
    if dry_run:
        _dry_run(config, output)
        return
    _run_pipeline(config, fresh, output)


def _run_source(
    config_file: str | None,
    fresh: bool,
    source: dict[str, Any],
    given: dict[str, Any],
    tables: dict[str, Any],
    output: str = "text",
) -> None:
    """``run --source`` / ``run --config``: options given on the command line override the config file's."""
    from dbsnaplake.config.file import load_config, source_run_config
    from dbsnaplake.run.executors import make_executor
    from dbsnaplake.run.tables import run_source

    if "snapshot_manifest" in given:
        raise ConfigError(
            "--manifest and --source/--config are mutually exclusive: --manifest runs an existing manifest, "
            "--source builds the manifests from the snapshot — pass one of them"
        )
    config = source_run_config(load_config(config_file) if config_file else None, {**given, **source}, tables)
    with progress_display() as progress, make_executor(config.executor, config.workers) as pool:
        result = run_source(config, pool, progress, fresh)
    reports = _write_table_reports(result)
    if output == "json":
        document = result.to_dict()
        for table in document["tables"]:
            table["report"] = reports.get(table["name"])
        print_document("run", document)
    else:
        print_result(result)
    if len(result.runs) == 1 and result.runs[0].error is not None:
        print_error(result.runs[0].error)  # one table: its own error is the message
        _exit(1)
    if not result.ok:
        print_error(
            f"table(s) {', '.join(result.failed)} failed (see above); rerun with --only {','.join(result.failed)} "
            "once fixed"
        )
        _exit(1)


def _dry_run(config: PipelineConfig, output: str) -> None:
    """Plan without writing anything and say what a run would make."""
    from dbsnaplake.stages.plan import plan as plan_stage

    with progress_display() as progress:
        result = plan_stage(config, progress, dry_run=True)
    if output == "json":
        print_document("plan", {"ok": True, "dry_run": True, **result.to_dict()})
    else:
        print_result(result)


def _write_table_reports(result: MultiTableResult) -> dict[str, str | None]:
    """Each table's run report (a table that failed before it was planned has none), by table name."""
    from dbsnaplake.ledger import Ledger

    reports: dict[str, str | None] = {}
    for table in result.runs:
        staging = table.config.location.s3dir_staging
        if Ledger.of_staging(staging).read_plan() is not None:
            reports[table.name] = _write_report(staging, f"{table.name}: ")
    return reports


@main.command()
@setting_options(*PIPELINE)
@dry_run_option
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan(dry_run: bool, output: str, **options: Any) -> None:
    """Stage 1: inspect the snapshot and write one manifest per snapshot file group, and the plan (with every
    setting: the other stage commands read theirs from it).

    Example: dbsnaplake plan --staging ./staging --datalake ./lake --partition-by year --output json
    """
    from dbsnaplake.roots import check_before_writing
    from dbsnaplake.run.lock import run_lock
    from dbsnaplake.stages.plan import plan as plan_stage

    config = _pipeline_config(given_settings(options, *PIPELINE))
    if dry_run:
        _dry_run(config, output)
        return
    check_before_writing(config.location, config.manifest_uri)
    with run_lock(config.location), progress_display() as progress:
        result = plan_stage(config, progress)
    _print_planned(result, output)


def _print_planned(result: PlanResult | PlanCompactionResult, output: str) -> None:
    """A planning stage's result: as text, or its group manifest URIs as JSON (for an orchestrator)."""
    if output == "json":
        print_json(list(result.group_manifests))
    else:
        print_result(result)


def _group_config(group_manifest: str, options: dict[str, Any]) -> PipelineConfig | None:
    """The options given to ``etl``/``compact``, checked against the plan; ``None`` when none were given."""
    from dbsnaplake.layout import parse_group_manifest

    given = given_settings(options, *PIPELINE)
    if not given:
        return None
    return _planned(parse_group_manifest(group_manifest).staging, given)


@main.command()
@click.option("--group-manifest", required=True, help="A snapshot file group's manifest-summary-N.json.")
@setting_options(*PIPELINE)
def etl(group_manifest: str, **options: Any) -> None:
    """Stage 2: ETL one snapshot file group into the staging lake; prints a JSON result.

    The settings are the plan's: pass the group manifest and nothing else (an option that contradicts the plan is
    refused). Example: dbsnaplake etl
    --group-manifest ./staging/manifests/snapshot-file-groups/manifest-summary/manifest-summary-1.json
    """
    from dbsnaplake.stages.etl import etl as etl_stage

    print_json(etl_stage(group_manifest, _group_config(group_manifest, options)).to_dict())


@main.command("plan-compaction")
@setting_options(*PIPELINE)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan_compaction_command(output: str, **options: Any) -> None:
    """Stage 3: pack staging files into partition file groups of about the target size.

    Example: dbsnaplake plan-compaction --staging ./staging --output json
    """
    from dbsnaplake.run.lock import run_lock
    from dbsnaplake.stages.plan_compaction import plan_compaction

    given = given_settings(options, *PIPELINE)
    config = _planned(given.get("staging"), given)
    with run_lock(config.location), progress_display() as progress:
        result = plan_compaction(config, progress)
    _print_planned(result, output)


@main.command()
@click.option("--group-manifest", required=True, help="A partition file group's manifest-summary-N.json.")
@setting_options(*PIPELINE)
def compact(group_manifest: str, **options: Any) -> None:
    """Stage 4: compact one partition file group into the data lake; prints a JSON result.

    The settings are the plan's: pass the group manifest and nothing else. Example: dbsnaplake compact
    --group-manifest ./staging/manifests/partition-file-groups/manifest-summary/manifest-summary-1.json
    """
    from dbsnaplake.stages.compact import compact as compact_stage

    print_json(compact_stage(group_manifest, _group_config(group_manifest, options)).to_dict())


@main.command()
@setting_options(*PIPELINE)
@output_option
def validate(output: str, **options: Any) -> None:
    """Stage 5: compare the data lake with the snapshot (files, bytes, records, per partition).

    Exits 1 when records do not match. Example: dbsnaplake validate --staging ./staging --output json
    """
    from dbsnaplake.stages.validate import validate as validate_stage

    json_output = _json_output("validate", output)
    given = given_settings(options, *PIPELINE)
    with progress_display() as progress:
        result = validate_stage(_planned(given.get("staging"), given), progress)
    if json_output:
        print_document("validate", result.to_dict())
    else:
        print_result(result)


@main.command("publish")
@setting_options(*PIPELINE)
@output_option
def publish_command(output: str, **options: Any) -> None:
    """Stage 6: validate, then publish the data lake atomically (_SUCCESS, and _latest.json with --publish latest).

    'run' does this itself; external orchestrators call it after the last compact group.
    Example: dbsnaplake publish --staging ./staging --output json
    """
    from dbsnaplake.run.pipeline import publish_snapshot

    json_output = _json_output("publish", output)
    given = given_settings(options, *PIPELINE)
    with progress_display() as progress:
        result = publish_snapshot(_planned(given.get("staging"), given), progress)
    if json_output:
        print_document("publish", {"ok": True, "published": result.to_dict() if result else None})
    else:
        print_result(result or "already published by an earlier run")


@main.command()
@click.option("--staging", required=True, help="Staging root of the run.")
@output_option
def status(staging: str, output: str) -> None:
    """Where a run stands: per stage, planned / done / failed groups, bytes, records, and each failed group's error.

    Example: dbsnaplake status --staging s3://b/staging/db/t/snapshot=2024-01-01T00:00:00Z/ --output json
    """
    from dbsnaplake.run.status import run_status

    json_output = _json_output("status", output)
    result = run_status(staging)
    if not result.found:
        raise StageError(
            f"nothing at {result.staging}: no dbsnaplake run has planned there — check the path (the staging folder "
            "given to 'dbsnaplake run --staging')"
        )
    if json_output:
        print_document("status", {"ok": True, **result.to_dict()})
    else:
        print_result(result)


@main.command()
@click.option("--staging", required=True, help="Staging root of a published snapshot.")
def clean(staging: str) -> None:
    """Remove the staging lake (STAGING/datalake/) of a published snapshot: it is as big as the data lake and only
    compaction reads it. The manifests, the state and the report stay, so 'status' and 'report' still work.
    Refused while the snapshot is not published.

    Example: dbsnaplake clean --staging s3://b/staging/db/t/snapshot=2024-01-01T00:00:00Z/
    """
    from dbsnaplake.ledger import Ledger
    from dbsnaplake.run.lock import run_lock

    ledger = Ledger.of_staging(staging)
    with run_lock(ledger.location):
        files, size = ledger.clean_staging_lake()
    print_result(f"removed the staging lake {ledger.location.s3dir_staging_datalake} ({files:,} files, {format_size(size)})")


@main.command()
@click.option("--staging", required=True, help="Staging root of the run.")
def report(staging: str) -> None:
    """(Re)build the run report, STAGING/manifests/report.html, and print where it is: file sizes of the snapshot,
    staging and data lake against the target, records and bytes per partition, time per stage and per group (a
    Gantt of the workers), validation per partition. One HTML file that opens offline.

    Example: dbsnaplake report --staging s3://b/staging/db/t/snapshot=2024-01-01T00:00:00Z/
    """
    from dbsnaplake.report import write_report

    console.print(write_report(staging), highlight=False, soft_wrap=True)


@main.command("ddl")
@click.option("--datalake", required=True, help="A published data lake (its _latest.json or _SUCCESS is read).")
@click.option(
    "--dialect",
    type=click.Choice(["athena", "spark", "trino"]),
    default="athena",
    show_default=True,
    help="athena: Hive DDL (CREATE EXTERNAL TABLE ... STORED AS PARQUET); spark: a Spark SQL data-source table; "
    "trino: the Hive connector's CREATE TABLE ... WITH (external_location).",
)
@click.option("--database", default=None, help="Qualify the table with this database (schema).")
@click.option("--table", default=None, help="The table's name. [default: the data lake folder's name]")
def ddl_command(datalake: str, dialect: str, database: str | None, table: str | None) -> None:
    """Print the SQL that declares the published Parquet lake as an external table: its columns, its partition
    columns with the types the plan gave them, its location (a latest lake's current version), then the statement
    that loads its partitions.

    Example: dbsnaplake ddl --datalake s3://b/datalake/db/orders/ --database analytics > orders.sql
    """
    from dbsnaplake.formats.ddl import table_ddl
    from dbsnaplake.formats.hive import default_table_name, published_table
    from dbsnaplake.ledger import read_published

    published = published_table(*read_published(datalake))
    name = table or default_table_name(datalake)
    click.echo(table_ddl(published, name, dialect, database), nl=False)  # type: ignore[arg-type]  # a click.Choice


@main.group()
def versions() -> None:
    """Published versions of a data lake: list them, remove old ones."""


@versions.command("list")
@click.option("--datalake", required=True, help="A --publish latest data lake (static path).")
def versions_list(datalake: str) -> None:
    """List the version folders of a latest-only data lake, oldest first; * marks the current one.

    Example: dbsnaplake versions list --datalake s3://b/datalake/db/orders/
    """
    from dbsnaplake.ledger import read_commit
    from dbsnaplake.stages.publish import list_versions

    found = list_versions(datalake)
    for v in found:
        mark = "*" if v.current else " "
        state = "committed" if v.committed else "uncommitted"
        console.print(f"{mark} {v.root}  {state}, {v.n_file:,} files, {format_size(v.size)}", highlight=False)
    if found:
        return
    commit = read_commit(datalake)
    if commit is None:
        print_result(f"no versions under {datalake}: nothing is published there yet")
    else:
        print_result(
            f"{datalake} is a historical lake (one snapshot per folder, --publish historical): version "
            f"{commit.version}, {commit.n_file:,} files, {commit.n_record:,} records, committed by its _SUCCESS"
        )


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
    from dbsnaplake import storage
    from dbsnaplake.stages.publish import remove_old_versions, remove_version_folder

    if (datalake is None) == (version_root is None):
        raise ConfigError("give either --datalake (remove old versions) or --version (remove one folder)")
    if version_root is not None:
        count = remove_version_folder(storage.as_dir(version_root))
        console.print(f"removed {version_root} ({count:,} objects)", highlight=False)
        return
    assert datalake is not None
    for v in remove_old_versions(datalake, keep):
        console.print(f"removed {v.root} ({v.n_file:,} files, {format_size(v.size)})", highlight=False)


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
@setting_options(SourceSettings, exclude=SOURCE_OPTIONS)
def manifest_build(source: str, out: str, **options: Any) -> None:
    """Detect what SOURCE holds (an RDS/Aurora export, a DynamoDB export, or a folder of Parquet, CSV, NDJSON
    or JSON files) and write its snapshot manifest(s).

    Example: dbsnaplake manifest build s3://bucket/exports/mydb-2024-08-01/ --out s3://bucket/manifests/
    """
    from dbsnaplake.sources import DynamoDBOptions, FolderOptions, write_source_manifests

    settings = SourceSettings(**given_settings(options, SourceSettings))
    with progress_display() as progress:
        result = write_source_manifests(
            source, out, progress, FolderOptions.of(settings), DynamoDBOptions(settings.dynamodb_maps)
        )
    print_result(result)
