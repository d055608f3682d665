"""Every shape dbsnaplake stores, as a frozen record with ``to_dict`` / ``from_dict``.

The state of a run is JSON in the store (the plan, done and failed markers, group manifest headers, the
validation result, the publish commit, the ``latest`` pointer, the run lock). Nothing else reads stored data
with ``["key"]``: it asks this module for a record. A stored record carries its ``kind``; reading one of
another kind fails with the URI and the kind it is (:class:`~dbsnaplake.errors.RecordError`).

Settings travel inside records as plain JSON (``settings``: what ``PipelineConfig.to_dict`` gives), so this
module stays at the bottom of the package and imports no other part of it but the errors.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, get_type_hints

from dbsnaplake.errors import ConfigError, RecordError
from dbsnaplake.units import format_size

R = TypeVar("R", bound="Record")


class Record:
    """A frozen dataclass that converts to and from JSON-ready dicts (nested records and tuples included)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _dump(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "") -> R:
        """The record in ``data``; ``where`` (a URI) names it in errors."""
        where = where or cls.__name__
        if not isinstance(data, Mapping):
            raise RecordError(f"{where} is not a {_kind_name(cls)} record: expected a JSON object")
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        missing = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                values[f.name] = _load(hints[f.name], data[f.name], f"{where}: {f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                missing.append(f.name)
        if missing:
            raise RecordError(
                f"{where} is not a {_kind_name(cls)} record (it has no {', '.join(map(repr, missing))})"
            )
        return cls(**values)


class StoredRecord(Record):
    """A record stored on its own (a JSON file, or a manifest's header): it carries its ``kind``."""

    KIND: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.KIND, **super().to_dict()}

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "") -> R:
        kind = data.get("kind") if isinstance(data, Mapping) else None
        expected = cls.KIND  # type: ignore[attr-defined]
        if kind is not None and kind != expected:
            raise RecordError(f"{where or cls.__name__} is a {kind} record, not a {expected} record")
        return super().from_dict(data, where)  # type: ignore[misc]

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2).encode()

    @classmethod
    def from_json(cls: type[R], raw: bytes, where: str) -> R:
        try:
            data = json.loads(raw)
        except ValueError:
            raise RecordError(f"{where} is not JSON: expected a {_kind_name(cls)} record") from None
        return cls.from_dict(data, where)


def _kind_name(cls: type) -> str:
    return str(getattr(cls, "KIND", cls.__name__))


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _dump(v) for k, v in value.items()}
    return value


def _load(hint: Any, value: Any, where: str) -> Any:
    """``value`` (JSON) as the type ``hint`` says: records, tuples of them, optionals; other values as they are."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _load(options[0], value, where) if len(options) == 1 else value
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise RecordError(f"{where} must be a list, got {value!r}")
        args = typing.get_args(hint)
        return tuple(_load(args[0], v, where) for v in value) if args else tuple(value)
    if hint is float and isinstance(value, int):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise RecordError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


# ---- setting values -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    """One ``--sort-by`` key: a column, ascending unless ``descending``."""

    column: str
    descending: bool = False

    def __str__(self) -> str:
        return f"{self.column}:desc" if self.descending else self.column


def parse_sort_keys(text: str | Sequence[str] | None) -> tuple[SortKey, ...]:
    """``"order_time,amount:desc"`` → ``(SortKey("order_time"), SortKey("amount", descending=True))``."""
    if not text:
        return ()
    items = text.split(",") if isinstance(text, str) else [str(i) for i in text]
    keys = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        column, _, direction = item.partition(":")
        direction = direction.strip().lower()
        if direction not in ("", "asc", "desc"):
            raise ConfigError(f"--sort-by {item!r}: the direction after ':' must be 'asc' or 'desc'")
        keys.append(SortKey(column.strip(), descending=direction == "desc"))
    return tuple(keys)


# ---- planning -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotStats(Record):
    """What planning learned about the snapshot."""

    n_file: int
    size: int
    n_record: int | None
    min_file_size: int
    median_file_size: int
    max_file_size: int
    in_memory_ratio: float
    """Bytes in memory per byte on disk (from Parquet footers; 1.0 for text formats)."""

    def __str__(self) -> str:
        records = f"{self.n_record:,}" if self.n_record is not None else "unknown"
        return (
            f"{self.n_file:,} files, {format_size(self.size)}, {records} records; file sizes "
            f"{format_size(self.min_file_size)} / {format_size(self.median_file_size)} / "
            f"{format_size(self.max_file_size)} (min / median / max); ~{self.in_memory_ratio:.1f}x in memory"
        )


@dataclass(frozen=True)
class GroupSizeChoice(Record):
    """The most snapshot bytes one ETL group may hold, and how that was decided."""

    size: int
    reason: str


@dataclass(frozen=True)
class Estimate(Record):
    """What a run will make, estimated at planning from a sample of the snapshot (read, transformed, partitioned and
    encoded as the ETL stage does)."""

    sample_files: int
    sample_bytes: int
    sample_rows: int
    partitions_in_sample: int
    partitions: int
    """Estimated distinct partitions of the whole snapshot (GEE estimator from the sample's value frequencies)."""
    staging_files: int
    staging_bytes: int
    lake_files: int
    lake_bytes: int
    bytes_per_second: float
    """ETL throughput of one worker on the sample: snapshot bytes read, transformed, sorted and encoded per second."""
    seconds: float
    """A rough run time: ETL and compaction at the sample's throughput, shared by the workers."""

    def __str__(self) -> str:
        return (
            f"estimate from {self.sample_files:,} sample files ({format_size(self.sample_bytes)}, "
            f"{self.sample_rows:,} rows, {self.partitions_in_sample:,} partitions): ~{self.partitions:,} partitions, "
            f"~{self.staging_files:,} staging files ({format_size(self.staging_bytes)}), ~{self.lake_files:,} data-lake "
            f"files ({format_size(self.lake_bytes)}), ~{self.seconds:.0f} s at {format_size(self.bytes_per_second)}/s "
            "per worker"
        )


@dataclass(frozen=True)
class PlanResult(StoredRecord):
    """``state/plan.json``, written last by the ``plan`` stage: the run's settings and its snapshot file groups."""

    KIND: ClassVar[str] = "plan"
    stats: SnapshotStats
    group_size: GroupSizeChoice
    group_manifests: tuple[str, ...]
    schema: str | None
    """The snapshot's schema (Arrow IPC, base64; see :func:`dbsnaplake.frames.schema.decode_schema`), when known."""
    fingerprint: str
    """Of the snapshot manifest and every setting that decides the result (see :mod:`dbsnaplake.ledger`)."""
    version: str
    """The snapshot's time stamp, ``YYYY_MM_DD_HH_MM_SS``."""
    version_root: str
    """The data-lake folder this snapshot's files go to (see :mod:`dbsnaplake.layout`)."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The run's settings (``PipelineConfig.to_dict()``): stage commands read theirs from here."""
    estimate: Estimate | None = None
    """What the run will make, from a sample (see :class:`Estimate`)."""
    dry_run: bool = False
    """Planned without writing anything (``--dry-run``): the group manifests are the ones a run would write."""
    lake_schema: str | None = None
    """The transform's output in lake types, partition columns included (Arrow IPC, base64), from running it on an
    empty frame: the commit takes the partition columns' types from here (``None``: planned by an earlier release)."""

    def __str__(self) -> str:
        verb = "would plan" if self.dry_run else "planned"
        lines = [f"{verb} {len(self.group_manifests)} snapshot file groups; {self.group_size.reason}"]
        if self.estimate is not None:
            lines.append(str(self.estimate))
        if self.dry_run:
            lines.append("dry run: nothing was written")
        return "\n".join(lines)


@dataclass(frozen=True)
class PlanCompactionResult(StoredRecord):
    """``state/plan-compaction.json``, written last by the ``plan-compaction`` stage."""

    KIND: ClassVar[str] = "plan-compaction"
    n_partition: int
    n_staging_file: int
    staging_size: int
    staging_records: int
    group_manifests: tuple[str, ...]
    fingerprint: str
    version_root: str

    def __str__(self) -> str:
        return (
            f"planned {len(self.group_manifests)} partition file groups over {self.n_partition} partitions "
            f"({self.n_staging_file} staging files)"
        )


# ---- group manifest headers (a group manifest summary's ``details``) --------------------------------------------


@dataclass(frozen=True)
class SnapshotFileGroup(StoredRecord):
    """Header of a snapshot file group manifest: what one ETL worker needs besides the file list."""

    KIND: ClassVar[str] = "snapshot-file-group"
    group: int
    n_group: int
    snapshot_manifest: str
    settings: Mapping[str, Any]
    """The plan's settings: the worker reads its partition keys, sort keys and transform from here."""
    reader: SnapshotReader | None = None
    """How the source's files are read (see :func:`dbsnaplake.frames.readers.read_snapshot_file`)."""
    schema: str | None = None


@dataclass(frozen=True)
class StagingFileGroup(StoredRecord):
    """Header of a staging file group manifest, written by the ETL worker with its staging files."""

    KIND: ClassVar[str] = "staging-file-group"
    group: int
    n_record_in: int
    n_record_out: int
    partition_by: tuple[str, ...]
    schema: str
    n_bad_value: int = 0
    rows_fingerprint_algorithm: str | None = None
    """How the manifest's ``rows_fingerprint`` column was computed (``None``: by a release without fingerprints)."""
    staging_compression: str | None = None
    """The Parquet codec of the group's staging files, but for partitions with a lake file's worth of rows in the
    group, staged in the lake's codec so compaction can copy them (``None``: written by a release that did not say;
    their low-cardinality columns are dictionary-encoded as the data lake's are, by ``frames.writer.open_parquet_writer``)."""


@dataclass(frozen=True)
class PartitionFileGroup(StoredRecord):
    """Header of a partition file group manifest: one compaction worker's partition (or part of one), or several
    small partitions packed into one task (``packed``)."""

    KIND: ClassVar[str] = "partition-file-group"
    group: int
    partition: str
    """The group's partition; for a packed group, the first of ``packed``."""
    group_in_partition: int
    groups_in_partition: int
    target_file_size: int
    schema: str
    version_root: str
    settings: Mapping[str, Any]
    packed: tuple[str, ...] = ()
    """A packed group: these small partitions, each whole (its staging files are the manifest's rows of that
    ``partition``), so ``group_in_partition`` is 0 and ``groups_in_partition`` 1 for each. Empty: one partition."""

    @property
    def partitions(self) -> tuple[str, ...]:
        """The partitions this group writes, in order."""
        return self.packed or (self.partition,)


# ---- group results (done markers) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupTiming(Record):
    """When one run of a group started and finished (seconds since the epoch) and which worker ran it (host and
    process id): the run report draws its Gantt of workers from these. It tells how the group ran, not what it
    did, so two runs of a group differ here only."""

    started_at: float
    finished_at: float
    host: str
    pid: int

    @classmethod
    def since(cls, started_at: float) -> GroupTiming:
        """The timing of a group that started at ``started_at`` (``time.time()``) and finished now, here."""
        return cls(started_at=started_at, finished_at=time.time(), host=socket.gethostname(), pid=os.getpid())

    @property
    def seconds(self) -> float:
        return self.finished_at - self.started_at

    @property
    def worker(self) -> str:
        return f"{self.host}:{self.pid}"


@dataclass(frozen=True)
class EtlResult(StoredRecord):
    """What one ETL group did; stored as ``state/etl/done-<n>.json`` once every output exists."""

    KIND: ClassVar[str] = "etl-result"
    group: int
    n_file_in: int
    size_in: int
    n_record_in: int
    n_record_out: int
    n_bad_value: int
    n_partition: int
    size_out: int
    staging_manifest: str
    timing: GroupTiming | None = None
    """How this run of the group went (None in results of earlier versions)."""

    @property
    def processed(self) -> tuple[int, int, int]:
        """Files, bytes and rows the group read."""
        return self.n_file_in, self.size_in, self.n_record_in


@dataclass(frozen=True)
class WrittenFile(Record):
    """A Parquet file written to the store."""

    uri: str
    size: int
    n_record: int


@dataclass(frozen=True)
class CompactResult(StoredRecord):
    """What one compaction group did; stored as ``state/compact/done-<n>.json`` once every file exists."""

    KIND: ClassVar[str] = "compact-result"
    group: int
    partition: str
    n_file_in: int
    size_in: int
    n_record: int
    files: tuple[WrittenFile, ...]
    timing: GroupTiming | None = None
    """How this run of the group went (None in results of earlier versions)."""
    file_partitions: tuple[str, ...] = ()
    """A packed group's results: the partition of each of ``files``, in order. Empty: every file is in
    ``partition``."""
    n_copied: int = 0
    """Files copied as they were from staging (already in the lake's encoding and size), not re-encoded."""
    n_joined: int = 0
    """Files written by joining staging files' row groups (their bytes copied, in order), not re-encoded."""

    @property
    def processed(self) -> tuple[int, int, int]:
        """Files, bytes and rows the group read."""
        return self.n_file_in, self.size_in, self.n_record

    @property
    def files_by_partition(self) -> tuple[tuple[str, WrittenFile], ...]:
        """``(partition, file)`` for each file written."""
        partitions = self.file_partitions or (self.partition,) * len(self.files)
        return tuple(zip(partitions, self.files, strict=True))

    @property
    def what(self) -> str:
        """The partition(s) the group wrote, for people."""
        if len(set(self.file_partitions)) > 1:
            return f"{len(set(self.file_partitions)):,} small partitions ({self.file_partitions[0]} ...)"
        return self.partition or "(unpartitioned)"


@dataclass(frozen=True)
class FailedGroup(StoredRecord):
    """``state/<stage>/failed-<n>.json``: the last error of a group that kept failing."""

    KIND: ClassVar[str] = "failed-group"
    group: int
    failed_at: float
    attempts: int
    error: str


@dataclass(frozen=True)
class RunTimes(StoredRecord):
    """``state/run.json``: how the last ``run`` of a staging area went, stage by stage; written at its end (also
    when validation failed) for the run report."""

    KIND: ClassVar[str] = "run-times"
    started_at: float
    finished_at: float
    seconds: Mapping[str, float]
    """Per stage that ran, in order: wall-clock seconds."""
    skipped: Mapping[str, int] = field(default_factory=dict)
    """Per stage, what an earlier run had finished (see ``RunResult.skipped``)."""
    workers: int = 1
    executor: str = "process"


# ---- validation ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals(Record):
    files: int = 0
    bytes: int = 0
    records: int = 0


@dataclass(frozen=True)
class PartitionCheck(Record):
    partition: str
    staging: Totals
    datalake: Totals
    staging_fingerprint: str = ""
    """Of the rows ETL wrote to the partition's staging files (16 hex digits; see :mod:`dbsnaplake.frames.fingerprint`)."""
    datalake_fingerprint: str = ""
    """Of the rows read back from the partition's data-lake files."""

    @property
    def ok(self) -> bool:
        return (
            self.staging.records == self.datalake.records and self.staging_fingerprint == self.datalake_fingerprint
        )


@dataclass(frozen=True)
class ValidateResult(StoredRecord):
    """``manifests/validate-datalake-result.json``: the data lake compared with the snapshot."""

    KIND: ClassVar[str] = "validate-result"
    snapshot: Totals
    snapshot_records_known: bool
    etl_records_in: int
    etl_records_out: int
    staging: Totals
    datalake: Totals
    partitions: tuple[PartitionCheck, ...]
    target_file_size: int
    files_judged: int
    """Data-lake files that are not their partition's remainder (smallest file)."""
    files_near_target: float
    """Share of data-lake files within ±10 % of the target, each partition's smallest file (its remainder) excepted."""
    bad_values: int = 0
    """Values that did not parse as their source type and were stored as null (``--on-bad-value null``)."""
    rows_fingerprint_algorithm: str = ""
    """How the partitions' row fingerprints were computed."""
    problems: tuple[str, ...] = ()
    ok: bool = True
    """No problems: set from ``problems`` (stored, so that other tools read it without recomputing)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", not self.problems)

    def __str__(self) -> str:
        verdict = "OK" if self.ok else f"FAILED ({len(self.problems)} problems)"
        return (
            f"validation {verdict}: snapshot {self.snapshot.files:,} files / {format_size(self.snapshot.bytes)} / "
            f"{self.etl_records_in:,} records → data lake {self.datalake.files:,} files / "
            f"{format_size(self.datalake.bytes)} / {self.datalake.records:,} records in "
            f"{len(self.partitions):,} partitions"
        )


# ---- publishing ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommittedFile(Record):
    path: str
    """Relative to the version folder."""
    size: int
    n_record: int


@dataclass(frozen=True)
class Commit(StoredRecord):
    """``<version folder>/_SUCCESS``: the commit record of a published snapshot, written last."""

    KIND: ClassVar[str] = "commit"
    version: str
    fingerprint: str
    published_at: float
    n_file: int
    n_record: int
    files: tuple[CommittedFile, ...]
    schema: str | None = None
    """The lake's columns with their types, the partition columns (last) included (Arrow IPC, base64; see
    :func:`dbsnaplake.frames.schema.decode_schema`): what catalogs and DDL declare. ``None``: by an earlier release."""
    partition_by: tuple[str, ...] = ()
    """The partition columns, outermost first (folders ``k1=v1/k2=v2/``)."""


@dataclass(frozen=True)
class LatestPointer(StoredRecord):
    """``<data lake>/_latest.json`` (``--publish latest``): the version folder readers read."""

    KIND: ClassVar[str] = "latest-pointer"
    version: str
    uri: str
    published_at: float


@dataclass(frozen=True)
class PublishResult(Record):
    """What the ``publish`` stage committed."""

    root: str
    n_file: int
    n_record: int
    pointer_moved: bool
    newer_version: str | None = None
    """``--publish latest``: the newer version ``_latest.json`` kept pointing to (this snapshot is older)."""
    table: str | None = None
    """``--table-format iceberg|delta``: what the table commit did (``Delta table s3://b/db/orders at version 3``)."""
    catalog: str | None = None
    """``--glue-database``: how the published lake was registered."""

    def __str__(self) -> str:
        where = f"{self.root} (_latest.json points to it)" if self.pointer_moved else self.root
        line = f"{self.n_file:,} files, {self.n_record:,} records committed in {where}"
        if self.newer_version:
            line += f"; _latest.json stays on the newer version {self.newer_version}"
        if self.table:
            line += f"; {self.table}"
        if self.catalog:
            line += f"\n{self.catalog}"
        return line


@dataclass(frozen=True)
class LockHolder(StoredRecord):
    """``state/lock.json``: the run holding a staging area."""

    KIND: ClassVar[str] = "lock"
    owner: str
    host: str
    pid: int
    started_at: float
    expires_at: float
    command: str = "?"


# ---- manifests -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestSummary(Record):
    """A manifest's summary JSON, in the format s3manifesto reads and writes: the data file's URI, totals, a
    fingerprint of the file list, and ``details`` (for a group manifest: its header record)."""

    manifest: str
    size: int | None = None
    n_record: int | None = None
    fingerprint: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> ManifestSummary:
        if isinstance(data, Mapping) and "details" not in data:  # the original's and our earlier format:
            known = {f.name for f in dataclasses.fields(cls)}  # extras at the top level
            details = {k: v for k, v in data.items() if k not in known}
            data = {**{k: v for k, v in data.items() if k in known}, "details": details}
        summary: ManifestSummary = super().from_dict(data, where)
        return summary


@dataclass(frozen=True)
class CsvOptions(Record):
    """What the user says about a folder's CSV files; ``None`` and empty fields are inferred."""

    delimiter: str | None = None
    header: bool | None = None
    """``None``: a header unless the first CSV file's first row holds a number or a date."""
    column_names: tuple[str, ...] = ()
    column_types: tuple[tuple[str, str], ...] = ()
    """``(column, type spelling)`` pairs, e.g. ``("price", "decimal(12,2)")`` (see
    :func:`dbsnaplake.frames.readers.parse_type`); they apply to the folder's JSON files too (``--column-types``)."""
    header_names: tuple[str, ...] = ()
    """The first CSV file's header row, when the header was inferred: the names of a later file that has none."""

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> CsvOptions:
        if isinstance(data, Mapping) and isinstance(data.get("column_types"), Mapping):  # as earlier releases stored it
            data = {**data, "column_types": [list(pair) for pair in data["column_types"].items()]}
        options: CsvOptions = super().from_dict(data, where)
        return options


@dataclass(frozen=True)
class ColumnRestore(Record):
    """How one string column of an RDS/Aurora export is parsed back into its original type."""

    name: str
    original_type: str
    """As the database named it: ``numeric(12,2)``, ``timestamp with time zone``."""
    kind: str
    """``date``, ``timestamp``, ``timestamptz``, ``time`` or ``decimal``."""
    precision: int | None = None
    scale: int | None = None


@dataclass(frozen=True)
class SnapshotReader(Record):
    """How the ETL stage reads a source's files (a snapshot manifest's ``details.reader``): the source's format and
    its options. Without one, files are read by their name's suffix."""

    format: str
    """The source reader: ``files``, ``dynamodb-json``, ``dynamodb-ion``, ``dynamodb-incremental``, ``rds-parquet``."""
    schema: str | None = None
    """The schema as read (types restored, items decoded), when the source knows it (Arrow IPC, base64)."""
    csv: CsvOptions | None = None
    """A folder source's CSV options."""
    encoding: str | None = None
    """A DynamoDB export's item encoding: ``json`` or ``ion``."""
    maps: str | None = None
    keys: tuple[str, ...] = ()
    """A DynamoDB incremental export's key attributes."""
    new_and_old_images: bool = True
    table: str | None = None
    """An RDS export's table (``mydb.public.orders``), named in errors."""
    columns: tuple[ColumnRestore, ...] = ()
    """An RDS export's string columns to restore to their original types."""
    partition_columns: tuple[tuple[str, str], ...] = ()
    """A folder source's Hive partition columns (``region=eu/`` folders): ``(name, "int64" or "string")``; each
    file's values are in the manifest's ``hive_partition:<name>`` columns."""


@dataclass(frozen=True)
class SnapshotDetails(Record):
    """``details`` of a snapshot manifest a source wrote: where the files came from and how to read them. Other keys
    (an export's own metadata) are kept in the summary for people and other tools."""

    reader: SnapshotReader | None = None
    source: str | None = None
