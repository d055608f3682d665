"""Run a snapshot source end to end: detect it, write its manifests, then one pipeline per table, one table after
another on one shared executor.

A folder of files is one table and uses the staging and data-lake roots as given. An export's tables each get
their own (the seed's layout): ``<staging>/<database>/<table>/snapshot=<snapshot time>/``, with the table's
manifest in that staging's ``manifests/``, and ``<datalake>/<database>/<table>_YYYY_MM_DD_HH_MM_SS/`` (``--publish
historical``) or ``<datalake>/<database>/<table>/`` (``--publish latest``). A table that fails does not stop the others (tables are independent): the result names it, and
``dbsnaplake run --source ... --only <table>`` reruns just that one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from dbsnaplake import storage
from dbsnaplake.config.file import SourceRunConfig
from dbsnaplake.config.settings import PipelineConfig, TableSettings, setting_fields
from dbsnaplake.errors import ConfigError, DbSnapLakeError
from dbsnaplake.layout import S3Location, table_location
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.roots import check_outside_source, check_roots, check_writable
from dbsnaplake.run.executors import InlineExecutor
from dbsnaplake.run.lock import run_lock
from dbsnaplake.run.pipeline import RunResult, run_pipeline
from dbsnaplake.sources import (
    DetectedSource,
    DynamoDBOptions,
    FolderOptions,
    SourceBuildResult,
    TableSnapshot,
    detect_source,
)


def location_for(detected: DetectedSource, config: SourceRunConfig, table: TableSnapshot) -> S3Location:
    assert config.staging is not None and config.datalake is not None  # source_run_config checks them
    if detected.single_table:
        return S3Location(s3uri_staging=config.staging, s3uri_datalake=config.datalake)
    return table_location(
        config.staging, config.datalake, table.database, table.table, table.snapshot_time, config.publish
    )


class StagingLocks:
    """The staging areas a ``run --source`` holds: each is locked before its first write (the table's manifest)
    and held until the run ends, so a second run on the same staging area is refused before it writes anything."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._held: set[str] = set()

    def hold(self, location: S3Location) -> None:
        if location.s3dir_staging not in self._held:
            self._stack.enter_context(run_lock(location))
            self._held.add(location.s3dir_staging)

    def holds(self, location: S3Location) -> bool:
        return location.s3dir_staging in self._held


def build_manifests(
    detected: DetectedSource,
    config: SourceRunConfig,
    progress: Progress | None = None,
    locks: StagingLocks | None = None,
) -> SourceBuildResult:
    """Write each table's manifest where its pipeline looks for it (``<table staging>/manifests/``), each after
    its staging area is locked (with ``locks``)."""

    assert config.staging is not None and config.datalake is not None  # source_run_config checks them
    staging, datalake = config.staging, config.datalake

    def manifest_uri_for(database: str, table: str, snapshot_time: str | None) -> str:
        if detected.single_table:
            location = S3Location(staging, datalake)
        else:
            location = table_location(staging, datalake, database, table, snapshot_time)
        if locks is not None:
            locks.hold(location)
        return location.s3path_snapshot_manifest_summary

    folder = FolderOptions.of(config)
    return detected.build(manifest_uri_for, progress, folder, DynamoDBOptions(config.dynamodb_maps))


def check_table_names(config: SourceRunConfig, tables: Sequence[TableSnapshot]) -> None:
    """Every name in ``[tables."..."]`` and ``only`` must be a table of the source."""
    known = [t.name for t in tables]
    for what, names in (('[tables."..."] sections of the config', list(config.tables)), ("--only", config.only)):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                f"{what} name table(s) the source does not have: {', '.join(unknown)} (its tables: {', '.join(known)})"
            )


def check_table_settings(config: SourceRunConfig) -> None:
    """Every table setting given (command line, top of the file, each ``[tables."..."]`` section) makes a valid
    pipeline: checked before the first write, while the tables' names are not known yet."""
    assert config.staging is not None and config.datalake is not None  # source_run_config checks them
    roots = S3Location(config.staging, config.datalake)
    for name in ["", *config.tables]:
        settings = config.settings_for(name)
        values = {f.name: getattr(settings, f.name) for f in setting_fields(TableSettings)}
        try:
            PipelineConfig(location=roots, **config.run_settings(), **values)
        except ConfigError as exc:
            raise ConfigError(f"table {name}: {exc}" if name else str(exc)) from None


def pipeline_configs(
    detected: DetectedSource, config: SourceRunConfig, tables: Sequence[TableSnapshot]
) -> list[tuple[TableSnapshot, PipelineConfig]]:
    """The selected tables' pipeline settings, all checked before any table runs."""
    check_table_names(config, tables)
    selected = [t for t in tables if not config.only or t.name in config.only]
    configs = []
    for table in selected:
        settings = config.settings_for(table.name)
        values = {**config.run_settings(), **{f.name: getattr(settings, f.name) for f in setting_fields(TableSettings)}}
        values["snapshot_time"] = config.snapshot_time or table.snapshot_time
        try:
            pipeline = PipelineConfig(
                location=location_for(detected, config, table), snapshot_manifest=table.manifest_uri, **values
            )
        except ConfigError as exc:
            raise ConfigError(f"table {table.name}: {exc}") from None
        configs.append((table, pipeline))
    return configs


@dataclass(frozen=True)
class TableRun:
    name: str
    config: PipelineConfig
    datalake: str
    """Where the table's files are: its data lake folder, or the version folder in it (``--publish latest``)."""
    result: RunResult | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class MultiTableResult:
    source: SourceBuildResult
    runs: tuple[TableRun, ...]

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(run.name for run in self.runs if not run.ok)

    def to_dict(self) -> dict[str, Any]:
        """What ``run --output json`` prints (see README, "Machine-readable output")."""
        return {
            "ok": self.ok,
            "source": {"kind": self.source.kind, "uri": self.source.source, "warnings": list(self.source.warnings)},
            "tables": [
                {
                    "name": run.name,
                    "datalake": run.datalake,
                    "error": run.error,
                    "seconds": run.seconds,
                    **(run.result.to_dict() if run.result else {"ok": False}),
                }
                for run in self.runs
            ],
        }

    def __str__(self) -> str:
        lines = []
        for run in self.runs:
            lines.append(f"== {run.name} → {run.datalake}")
            lines.append(str(run.result) if run.result is not None else f"FAILED    : {run.error}")
        n_ok = len(self.runs) - len(self.failed)
        failed = f", {len(self.failed)} FAILED: {', '.join(self.failed)}" if self.failed else ""
        lines.append(f"tables    : {n_ok} of {len(self.runs)} OK{failed}")
        return "\n".join(lines)


class _TableProgress:
    """Names the table in every progress task when a run has several."""

    def __init__(self, progress: Progress, name: str) -> None:
        self._progress, self._name = progress, name

    def start(self, task: str, total: int, done: int = 0, total_bytes: int = 0, done_bytes: int = 0) -> None:
        self._progress.start(f"{self._name}: {task}", total, done, total_bytes, done_bytes)

    def advance(self, steps: int = 1) -> None:
        self._progress.advance(steps)

    def flow(self, files: int = 0, size: int = 0, rows: int = 0) -> None:
        self._progress.flow(files, size, rows)

    def note(self, message: str) -> None:
        self._progress.note(f"{self._name}: {message}")


def run_tables(
    configs: Sequence[tuple[TableSnapshot, PipelineConfig]],
    executor: Executor,
    progress: Progress,
    fresh: bool = False,
    locks: StagingLocks | None = None,
) -> tuple[TableRun, ...]:
    """Each table's pipeline in turn; a failure is recorded and the next table runs. A staging area in ``locks`` is
    held already."""
    runs = []
    for table, pipeline in configs:
        table_progress = _TableProgress(progress, table.name) if len(configs) > 1 else progress
        start = time.perf_counter()
        datalake = pipeline.location.s3dir_datalake
        try:
            held = locks is not None and locks.holds(pipeline.location)
            result = run_pipeline(pipeline, executor, table_progress, fresh=fresh, lock=not held)
        except Exception as exc:  # one table's failure (ours or a library's) must not hide the other tables'
            error = str(exc) if isinstance(exc, DbSnapLakeError) else f"{type(exc).__name__}: {exc}"
            runs.append(TableRun(table.name, pipeline, datalake, error=error, seconds=time.perf_counter() - start))
            progress.note(f"{table.name}: FAILED: {error}")
            continue
        seconds = time.perf_counter() - start
        runs.append(TableRun(table.name, pipeline, result.plan.version_root, result=result, seconds=seconds))
    return tuple(runs)


def run_source(
    config: SourceRunConfig, executor: Executor | None = None, progress: Progress | None = None, fresh: bool = False
) -> MultiTableResult:
    """Detect the source, write every table's manifest, then run the selected tables one after another.
    ``fresh`` discards what earlier runs did in each table's staging area.

    Nothing is written before every check passed: the settings, the roots (writable; outside a folder source, clear
    of an export's files); each table's staging area is locked before its manifest is written there."""
    executor = executor or InlineExecutor()
    progress = progress or NoProgress()
    assert config.source is not None and config.staging is not None and config.datalake is not None
    check_table_settings(config)
    FolderOptions.of(config).check()
    detected = detect_source(config.source)
    roots = S3Location(config.staging, config.datalake)
    if detected.single_table:  # every file below a folder source is data: the run's own files would be read too
        check_outside_source(roots, detected.source)
        check_roots(roots, [storage.normalize_uri(info.uri) for info in detected.listing])
    check_writable(roots)  # an export reads only its own files: each table's are checked before its plan
    with contextlib.ExitStack() as stack:
        locks = StagingLocks(stack)
        built = build_manifests(detected, config, progress, locks)
        for line in str(built).splitlines():
            progress.note(line)
        configs = pipeline_configs(detected, config, built.tables)
        return MultiTableResult(built, run_tables(configs, executor, progress, fresh, locks))
