"""Stage 2, ETL to staging: one worker reads one snapshot file group, transforms it, partitions it, sorts each
partition and writes one staging Parquet file per partition, then the group's staging manifest.

Memory stays near the group's size on disk, not a multiple of it: the group is processed one file at a time
(read, transform, split by partition, sort), and each file's sorted slice of a partition is kept as a sorted
*run*, zstd-compressed Arrow IPC in memory. At the end each partition's runs are merged (sorted) and streamed
into its staging file. The transform is therefore applied to one snapshot file at a time: it must work row
by row (SQL ``SELECT`` expressions, ``with_columns``, filters), not aggregate across files.

Output names derive from the group number alone (``datalake/<partition>/group-000007.parquet``), so a rerun of
a group overwrites its own files instead of adding new ones.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from dbsnaplake import storage
from dbsnaplake.config.settings import PipelineConfig, planned_config
from dbsnaplake.errors import SnapshotError, TransformError
from dbsnaplake.frames import fingerprint
from dbsnaplake.frames.partitioning import partition_path
from dbsnaplake.frames.readers import FileToRead, ReadResult, read_snapshot_file
from dbsnaplake.frames.schema import conform, decode_schema, encode_schema, unify
from dbsnaplake.frames.sorting import check_sort_keys, merge_sorted_runs, sort_table
from dbsnaplake.frames.transform import apply_transform
from dbsnaplake.frames.types import for_polars, lake_schema, to_lake
from dbsnaplake.frames.writer import open_parquet_writer
from dbsnaplake.layout import STAGING_FILE_GROUPS_FOLDER
from dbsnaplake.ledger import ETL, Ledger
from dbsnaplake.manifest import (
    ETAG,
    FILES_SCHEMA,
    N_RECORD,
    PARTITION,
    ROWS_FINGERPRINT,
    SIZE,
    URI,
    Manifest,
    files_table,
    read_group_manifest,
    write_manifest,
)
from dbsnaplake.progress import Report
from dbsnaplake.records import EtlResult, GroupTiming, SnapshotFileGroup, SnapshotReader, SortKey, StagingFileGroup
from dbsnaplake.sources.readers import SOURCE_READERS

STAGING_ROW_GROUP_ROWS = 65_536  # small row groups keep the compaction merge's memory low
RUN_BATCH_ROWS = 8_192  # runs are decompressed one batch at a time while merging
RUN_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")  # faster and smaller than lz4 here


@dataclass
class PartitionRuns:
    """One partition's sorted runs (one per snapshot file), as zstd-compressed Arrow IPC streams in memory."""

    runs: list[pa.Buffer] = field(default_factory=list)
    n_record: int = 0

    def add(self, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema, options=RUN_IPC_OPTIONS) as writer:
            writer.write_table(table, max_chunksize=RUN_BATCH_ROWS)
        self.runs.append(sink.getvalue())
        self.n_record += table.num_rows

    def streams(self, schema: pa.Schema, source: str) -> list[Iterator[pa.Table]]:
        return [_read_run(run, schema, source) for run in self.runs]


def _read_run(run: pa.Buffer, schema: pa.Schema, source: str) -> Iterator[pa.Table]:
    for batch in pa.ipc.open_stream(run):
        yield conform(pa.Table.from_batches([batch]), schema, source)


def read_group_file(
    file: FileToRead, schema: pa.Schema | None, reader: SnapshotReader | None, on_bad_value: str
) -> ReadResult:
    """One snapshot file as a table (conformed to the group's schema when known); its record count checked."""
    file.check_unchanged()
    result = read_snapshot_file(file, reader, on_bad_value, SOURCE_READERS)
    table = result.table
    if file.expected_records is not None and table.num_rows != file.expected_records:
        raise SnapshotError(f"{file.uri} holds {table.num_rows} records but the manifest says {file.expected_records}")
    if schema is not None:
        table = conform(table, schema, file.uri)
    return ReadResult(table, result.n_bad_value)


def group_files(manifest: Manifest) -> Iterator[FileToRead]:
    """The group's files, each with its manifest row's other columns (a source's checksums, ...)."""
    extra_names = [name for name in manifest.files.column_names if name not in FILES_SCHEMA.names]
    extras = manifest.files.select(extra_names).to_pylist() if extra_names else [{}] * manifest.n_file
    columns = (manifest.column(URI), manifest.column(SIZE), manifest.column(N_RECORD), extras, manifest.column(ETAG))
    for uri, size, expected, extra, etag in zip(*columns, strict=True):
        yield FileToRead(uri, size, expected, extra, etag)


def transform_file(spec: str | None, table: pa.Table, uri: str) -> pl.DataFrame:
    frame = pl.from_arrow(for_polars(table, uri), rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    try:
        return apply_transform(spec, frame)
    except TransformError as exc:
        raise TransformError(f"{exc} (on {uri})") from None


def split_partitions(
    frame: pl.DataFrame, keys: tuple[str, ...], include_key: bool = False
) -> list[tuple[str, pl.DataFrame]]:
    """``[(hive path, rows without the key columns, or with them if include_key)]``, sorted by path; one entry
    ``("", frame)`` without keys."""
    if not keys:
        return [("", frame)] if frame.height else []
    parts = frame.partition_by(list(keys), as_dict=True, include_key=include_key, maintain_order=True)
    by_path: dict[str, list[pl.DataFrame]] = {}
    for values, part in parts.items():
        # "" and null (or NaN and null) are two groups but one Hive folder: write them as one partition
        by_path.setdefault(partition_path(keys, values), []).append(part)
    return [(path, pl.concat(by_path[path])) for path in sorted(by_path)]


def rebatch(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Concatenate a stream of small tables into tables of at least ``rows`` rows (the last may be smaller)."""
    pending: list[pa.Table] = []
    pending_rows = 0
    for table in tables:
        pending.append(table)
        pending_rows += table.num_rows
        if pending_rows >= rows:
            yield pa.concat_tables(pending)
            pending, pending_rows = [], 0
    if pending:
        yield pa.concat_tables(pending)


def write_staging_file(
    uri: str, runs: PartitionRuns, schema: pa.Schema, sort_by: Sequence[SortKey], compression: str
) -> tuple[int, int]:
    """Merge a partition's sorted runs into one staging Parquet file; return its size and its rows' fingerprint."""
    streams = runs.streams(schema, uri)
    merged = merge_sorted_runs(streams, sort_by) if sort_by else itertools.chain.from_iterable(streams)
    tables = rebatch(merged, STAGING_ROW_GROUP_ROWS)
    first = next(tables)  # a partition has at least one row
    rows_fingerprint = 0
    with storage.atomic_output(uri) as local:
        with open_parquet_writer(local, first, compression) as writer:
            for table in itertools.chain([first], tables):
                writer.write_table(table, row_group_size=STAGING_ROW_GROUP_ROWS)
                rows_fingerprint = fingerprint.combine([rows_fingerprint, fingerprint.fingerprint(table)])
        return local.stat().st_size, rows_fingerprint


def etl(group_manifest: str, config: PipelineConfig | None = None, report: Report | None = None) -> EtlResult:
    """Process one snapshot file group end to end. Safe to rerun: it rewrites the same files.

    The settings are the plan's (in the group manifest's header); ``config``, when given, must agree with them.
    ``report`` is told about each snapshot file once it is read and transformed."""
    started_at = time.time()
    manifest, header = read_group_manifest(group_manifest, SnapshotFileGroup)
    config = planned_config(header.settings, config, group_manifest)
    group = header.group
    input_schema = decode_schema(header.schema) if header.schema else None
    partitions: dict[str, PartitionRuns] = {}
    out_schemas: list[tuple[str, pa.Schema]] = []
    n_record_in = n_record_out = n_bad_value = 0
    for file in group_files(manifest):
        uri = file.uri
        read = read_group_file(file, input_schema, header.reader, config.on_bad_value)
        table = read.table
        n_bad_value += read.n_bad_value
        n_record_in += table.num_rows
        source_schema = table.schema
        if report is not None:
            report(1, file.size or 0, table.num_rows)
        out = transform_file(config.transform, table, uri)
        del table
        config.require_output_columns(out.columns)
        n_record_out += out.height
        dropped = [] if config.partition_columns_in_files else list(config.partition_by)
        polars_schema = out.drop(dropped).to_arrow(compat_level=pl.CompatLevel.oldest()).schema
        schema = lake_schema(polars_schema, source_schema, config.keep_nanoseconds)
        check_sort_keys(schema, config.sort_by, uri)
        if not any(schema.equals(seen) for _, seen in out_schemas):
            out_schemas.append((uri, schema))
        for path, part in split_partitions(out, config.partition_by, config.partition_columns_in_files):
            arrow = to_lake(part.to_arrow(compat_level=pl.CompatLevel.oldest()), source_schema, config.keep_nanoseconds, uri)
            partitions.setdefault(path, PartitionRuns()).add(sort_table(arrow, config.sort_by))
    out_schema = unify(out_schemas)

    uris: list[str] = []
    sizes: list[int] = []
    fingerprints: list[int] = []
    counts: list[int | None] = []
    paths: list[str] = []
    for path in sorted(partitions):
        uri = config.location.staging_file(path, group)
        runs = partitions.pop(path)
        size, rows_fingerprint = write_staging_file(uri, runs, out_schema, config.sort_by, config.compression)
        sizes.append(size)
        fingerprints.append(rows_fingerprint)
        uris.append(uri)
        counts.append(runs.n_record)
        paths.append(path)

    summary = config.location.group_manifest_summary(STAGING_FILE_GROUPS_FOLDER, group)
    write_manifest(
        summary,
        files_table(
            uris,
            sizes,
            counts,
            **{PARTITION: pa.array(paths, pa.string()), ROWS_FINGERPRINT: pa.array(fingerprints, pa.uint64())},
        ),
        StagingFileGroup(
            group=group,
            n_record_in=n_record_in,
            n_record_out=n_record_out,
            n_bad_value=n_bad_value,
            partition_by=config.partition_by,
            schema=encode_schema(out_schema),
            rows_fingerprint_algorithm=fingerprint.ALGORITHM,
        ),
        data_uri=config.location.group_manifest_data(STAGING_FILE_GROUPS_FOLDER, group),
    )
    pa.default_memory_pool().release_unused()  # a worker's next task starts from a small heap
    result = EtlResult(
        group=group,
        n_file_in=manifest.n_file,
        size_in=manifest.size,
        n_record_in=n_record_in,
        n_record_out=n_record_out,
        n_bad_value=n_bad_value,
        n_partition=len(paths),
        size_out=sum(sizes),
        staging_manifest=summary,
        timing=GroupTiming.since(started_at),
    )
    Ledger(config.location).mark_done(ETL, result)  # last: the staging files and manifest exist
    return result
