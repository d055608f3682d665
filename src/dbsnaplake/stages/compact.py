"""Stage 4, compact: one worker merges one partition file group into data-lake files of about the target size.

Memory stays bounded: staging files are streamed a row group at a time. With ``--sort-by`` the staging files
are already sorted, so they are merged as sorted runs (see :func:`sorting.merge_sorted_runs`) instead of being
re-sorted in memory. Output names derive from the group (``part-<group in partition>-<file>.parquet``), so a
rerun overwrites; files a previous run of this group wrote beyond the new count are removed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.config.settings import PipelineConfig, planned_config
from dbsnaplake.errors import SnapshotError
from dbsnaplake.frames.schema import conform, decode_schema
from dbsnaplake.frames.sorting import merge_sorted_runs
from dbsnaplake.frames.writer import RollingParquetWriter
from dbsnaplake.layout import DATALAKE_FILE, datalake_file
from dbsnaplake.ledger import COMPACT, Ledger
from dbsnaplake.manifest import N_RECORD, SIZE, URI, read_group_manifest
from dbsnaplake.progress import Report
from dbsnaplake.records import CompactResult, GroupTiming, PartitionFileGroup, WrittenFile

MERGE_MEMORY = 256 * 1024**2
IN_MEMORY_RATIO_GUESS = 4.0


def iter_staging_file(uri: str, size: int, schema: pa.Schema, batch_rows: int) -> Iterator[pa.Table]:
    """Stream one staging file as tables of at most ``batch_rows`` rows, conformed to the lake schema."""
    try:
        with storage.open_input_file(uri, size) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_rows):
                yield conform(pa.Table.from_batches([batch]), schema, uri)
    except FileNotFoundError:
        raise SnapshotError(
            f"staging file {uri} is missing (was the staging area cleaned?): start over with 'dbsnaplake run --fresh'"
        ) from None


def remove_stale_outputs(
    version_root: str, partition: str, group_in_partition: int, groups_in_partition: int, keep: set[str]
) -> None:
    """Delete ``part-*`` files an earlier run of this group (or of groups that no longer exist) left behind."""
    folder = storage.as_dir(storage.join(version_root, partition))
    for info in storage.list_files(folder):
        relative = info.uri[len(folder) :]
        match = DATALAKE_FILE.match(relative)
        if not match or info.uri in keep:
            continue
        owner = int(match.group(1))
        is_last = group_in_partition == groups_in_partition - 1
        if owner == group_in_partition or (is_last and owner >= groups_in_partition):
            storage.delete(info.uri)


def write_empty_file(uri: str, schema: pa.Schema, config: PipelineConfig) -> WrittenFile:
    with storage.atomic_output(uri) as local:
        pq.write_table(schema.empty_table(), local, compression=config.compression)
        return WrittenFile(uri, local.stat().st_size, 0)


def compact(group_manifest: str, config: PipelineConfig | None = None, report: Report | None = None) -> CompactResult:
    """Merge one partition file group into the final data lake. Safe to rerun.

    The settings are the plan's (in the group manifest's header); ``config``, when given, must agree with them.
    ``report`` is told about the rows as they are written (and the staging bytes they came from)."""
    started_at = time.time()
    manifest, header = read_group_manifest(group_manifest, PartitionFileGroup)
    config = planned_config(header.settings, config, group_manifest)
    schema = decode_schema(header.schema)
    partition, position, count = header.partition, header.group_in_partition, header.groups_in_partition
    uris, sizes, counts = manifest.column(URI), manifest.column(SIZE), manifest.column(N_RECORD)
    n_record = sum(counts)
    bytes_per_row = max(1.0, sum(sizes) / max(1, n_record))  # at least 1: a group of 0 rows (an empty table)
    batch_rows = int(MERGE_MEMORY / (max(1, len(uris)) * bytes_per_row * IN_MEMORY_RATIO_GUESS))
    batch_rows = max(1024, min(65_536, batch_rows))
    runs = [iter_staging_file(u, s, schema, batch_rows) for u, s in zip(uris, sizes, strict=True)]
    stream = merge_sorted_runs(runs, config.sort_by) if config.sort_by else itertools.chain.from_iterable(runs)

    with RollingParquetWriter(
        lambda k: datalake_file(header.version_root, partition, position, k),
        schema,
        target_size=header.target_file_size,
        expected_rows=n_record,
        bytes_per_row=bytes_per_row,
        balanced=count > 1,
        compression=config.compression,
    ) as writer:
        for table in stream:
            writer.write(table)
            if report is not None:
                report(0, round(manifest.size * table.num_rows / max(1, n_record)), table.num_rows)
        written = writer.close()
    if not written:  # a table of 0 rows: one empty file with the schema, so DuckDB, Polars and Spark open the lake
        written = [write_empty_file(datalake_file(header.version_root, partition, position, 0), schema, config)]
    if report is not None:
        report(manifest.n_file, 0, 0)
    if sum(f.n_record for f in written) != n_record:
        raise SnapshotError(
            f"partition {partition or '(unpartitioned)'}: wrote {sum(f.n_record for f in written)} records but "
            f"the staging manifest {group_manifest} lists {n_record}; rerun the ETL stage"
        )
    remove_stale_outputs(header.version_root, partition, position, count, {f.uri for f in written})
    pa.default_memory_pool().release_unused()  # a worker's next task starts from a small heap
    result = CompactResult(
        group=header.group,
        partition=partition,
        n_file_in=manifest.n_file,
        size_in=manifest.size,
        n_record=n_record,
        files=tuple(written),
        timing=GroupTiming.since(started_at),
    )
    Ledger(config.location).mark_done(COMPACT, result)  # last: every file exists
    return result
