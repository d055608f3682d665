"""Stage 4, compact: one worker merges one partition file group into data-lake files of about the target size.

A group is one partition (or part of a big one), or several small partitions packed into one task (see
:class:`~dbsnaplake.records.PartitionFileGroup`); each partition of a group is written on its own, one after the
other, so memory is that of one partition at a time.

Staging files already in the lake's encoding (codec, schema; ETL writes a partition's rows so when they came in
``--sort-by`` order, as in snapshots exported in key or time order) are not decoded and encoded again: a partition
in one such file in the target band is copied as it is (a server-side copy on S3); files whose ``--sort-by`` ranges
do not overlap (their row groups' statistics say) are *joined*: their row groups' bytes copied, one file after the
other, into lake files of about the target size (see :mod:`dbsnaplake.frames.parquet_join`).

Otherwise staging files are streamed a row group at a time (on S3 one streamed GET each, or ranged GETs of up to
8 MiB when more than :data:`MERGE_STREAMS` are merged at once; never the whole file in memory), within a share of
``--worker-memory``. With ``--sort-by`` the staging files are already
sorted, so they are merged as sorted runs (see :func:`sorting.merge_sorted_runs`) instead of being re-sorted in
memory. Output names
derive from the group (``part-<group in partition>-<file>.parquet``), so a rerun overwrites; files a previous run
of this group wrote beyond the new count are removed. The done-marker is written last.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.config.settings import PipelineConfig, planned_config
from dbsnaplake.errors import SnapshotError
from dbsnaplake.frames.parquet_join import (
    CODECS,
    JOIN_MAX_ROW_GROUP_SHARE,
    JOIN_MIN_ROW_GROUP_SHARE,
    Footer,
    in_key_order,
    plan_files,
    read_footer,
    write_joined,
)
from dbsnaplake.frames.readers import read_row_groups
from dbsnaplake.frames.schema import conform, decode_schema
from dbsnaplake.frames.sorting import merge_sorted_runs, sort_table
from dbsnaplake.frames.writer import RollingParquetWriter
from dbsnaplake.layout import DATALAKE_FILE, datalake_file
from dbsnaplake.ledger import COMPACT, Ledger
from dbsnaplake.manifest import N_RECORD, PARTITION, SIZE, URI, Manifest, read_group_manifest
from dbsnaplake.progress import Report
from dbsnaplake.read_ahead import read_ahead
from dbsnaplake.records import CompactResult, GroupTiming, PartitionFileGroup, SortKey, WrittenFile
from dbsnaplake.storage.parallel import map_io

MERGE_MEMORY_SHARE = 0.25
"""Share of ``--worker-memory`` for the batches of the staging files being merged (one batch per file)."""
ROW_GROUP_MEMORY_SHARE = 0.25
"""Share of ``--worker-memory`` for the rows buffered for one data-lake row group."""
MAPPED_SHARE = 0.1
"""A partition's local staging files are read through memory maps (no copy) when they total at most this share of
``--worker-memory``; else with plain reads: the pages of a map count in the worker's resident memory as they are
read (a 2 GB snapshot's 700 MB staging file made compaction's worker peak at 1,025 MiB under ``--worker-memory
1GB``; 340 MiB read)."""
READ_AHEAD_PARTS = 4
"""On S3, each staging file being merged reads ahead (or takes from its streamed GET) at most this part of its share
of the merge's memory at a time (up to :data:`storage.STREAM_READ_AHEAD`): a merge of many files holds less of
each, within the budget."""
MERGE_STREAMS = 16
"""On S3, a merge of at most this many staging files reads each through one streamed GET (a connection held open
each while the merge runs); a merge of more reads them by ranged GETs of the read-ahead."""
IN_MEMORY_RATIO_GUESS = 4.0
COPY_SIZE_TOLERANCE = 0.1
"""A single staging file up to 10 % over the target is copied: validation's band for files near the target."""
MAX_COPY_SIZE = 5 * 1024**3
"""The largest object one S3 CopyObject copies."""
PARALLEL_IO = 8
"""Footers read, files copied and partition folders listed at once by a packed group."""

Published = Callable[[WrittenFile], None]
"""Told of each data-lake file as soon as it is published (see :meth:`Report.published`)."""


def no_one(file: WrittenFile) -> None:
    """A :data:`Published` for a caller that follows nothing."""


@dataclass(frozen=True)
class PartitionSlice:
    """What one partition of a group compacts: its staging files, and its place among its partition's groups."""

    partition: str
    group_in_partition: int
    groups_in_partition: int
    uris: tuple[str, ...]
    sizes: tuple[int, ...]
    counts: tuple[int, ...]

    @property
    def n_record(self) -> int:
        return sum(self.counts)

    @property
    def size(self) -> int:
        return sum(self.sizes)

    @property
    def whole_in_one_file(self) -> bool:
        """The whole partition is this slice's one staging file (no other group holds any of it)."""
        return self.groups_in_partition == 1 and len(self.uris) == 1

    def output(self, version_root: str, index: int) -> str:
        return datalake_file(version_root, self.partition, self.group_in_partition, index)


def partition_slices(manifest: Manifest, header: PartitionFileGroup) -> list[PartitionSlice]:
    """The group's partitions in order, each with its staging files (a packed group's rows, by ``partition``)."""
    uris, sizes, counts = manifest.column(URI), manifest.column(SIZE), manifest.column(N_RECORD)
    if not header.packed:
        return [
            PartitionSlice(
                header.partition, header.group_in_partition, header.groups_in_partition, tuple(uris), tuple(sizes),
                tuple(counts),
            )
        ]
    rows: dict[str, list[int]] = {partition: [] for partition in header.packed}
    for index, partition in enumerate(manifest.column(PARTITION)):
        if partition not in rows:
            raise SnapshotError(
                f"{manifest.summary_uri} lists staging files of partition {partition!r}, which its header does not "
                "pack: run 'dbsnaplake plan-compaction' again"
            )
        rows[partition].append(index)
    return [
        PartitionSlice(
            partition, 0, 1, tuple(uris[i] for i in members), tuple(sizes[i] for i in members),
            tuple(counts[i] for i in members),
        )
        for partition, members in rows.items()
    ]


def parquet_codec(compression: str) -> int:
    """The codec number a Parquet footer gives for ``--compression``-style names (``zstd`` → ZSTD's)."""
    name = "UNCOMPRESSED" if compression.lower() in ("none", "uncompressed") else compression.upper()
    return CODECS.get(name, -1)


def staging_footers(part: PartitionSlice, target_size: int) -> list[Footer] | None:
    """The footers of a partition's staging files, when copying or joining them might be possible: the partition's
    one file, or files big enough on average to give the lake big row groups; ``None`` otherwise (nothing read)."""
    if not part.uris or not (part.whole_in_one_file or part.size >= len(part.uris) * target_size * JOIN_MIN_ROW_GROUP_SHARE):
        return None
    try:
        return [read_footer(uri, size) for uri, size in zip(part.uris, part.sizes, strict=True)]
    except FileNotFoundError as exc:
        raise _missing(str(exc.filename or part.uris[0])) from None
    except SnapshotError:  # not the file ETL wrote (changed since?): decoded, validation compares its rows
        return None


def in_lake_encoding(footers: list[Footer], counts: tuple[int, ...], schema: pa.Schema, compression: str) -> bool:
    """Whether staging files are as compaction would write them: the lake's schema, every column in its codec,
    their row groups back to back (so they can be copied), the rows the manifest lists."""
    codec = parquet_codec(compression)
    first = footers[0]
    return (
        all(
            footer.n_record == count > 0 and footer.codecs() == {codec} and footer.joins_with(first)
            and footer.row_groups is not None
            for footer, count in zip(footers, counts, strict=True)
        )
        and first.arrow_schema().equals(schema)
    )  # fmt: skip


def can_copy(part: PartitionSlice, target_size: int) -> bool:
    """A whole partition in one staging file (in the lake's encoding) in the target band: copy it as it is."""
    return part.whole_in_one_file and part.sizes[0] <= min(target_size * (1 + COPY_SIZE_TOLERANCE), MAX_COPY_SIZE)


def joinable(
    footers: list[Footer], sort_by: tuple[SortKey, ...], schema: pa.Schema, target_size: int
) -> list[Footer] | None:
    """Staging files (in the lake's encoding) whose row groups, copied one file after the other in the order
    returned, make sorted lake files near the target of big row groups: their ``sort_by`` ranges do not overlap
    (each file is sorted already) and their row groups average :data:`JOIN_MIN_ROW_GROUP_SHARE` of the target at
    least, none over :data:`JOIN_MAX_ROW_GROUP_SHARE`."""
    sizes = [group.length for footer in footers for group in footer.row_groups or ()]
    too_small = sum(sizes) < len(sizes) * target_size * JOIN_MIN_ROW_GROUP_SHARE
    if not sizes or too_small or max(sizes) > target_size * JOIN_MAX_ROW_GROUP_SHARE:
        return None
    return in_key_order(footers, sort_by, schema)


def copy_partition(part: PartitionSlice, version_root: str) -> WrittenFile:
    """Copy a partition's one staging file to its data-lake name (atomically; server side on S3)."""
    target = part.output(version_root, 0)
    try:
        storage.copy(part.uris[0], target, durable=False)  # durable with the group's other files
    except FileNotFoundError:
        raise _missing(part.uris[0]) from None
    return WrittenFile(target, part.sizes[0], part.counts[0])


def join_partition(
    part: PartitionSlice, files: list[Footer], version_root: str, target_size: int, published: Published = no_one
) -> list[WrittenFile]:
    """Write a partition's staging files' row groups, in ``files``' order, as data-lake files of about the target
    size (see :mod:`dbsnaplake.frames.parquet_join`): their bytes copied, nothing decoded. A partition split over
    several groups is divided evenly, as :class:`RollingParquetWriter` does with ``balanced``."""
    pieces = [(footer, group) for footer in files for group in footer.row_groups or ()]
    # a row group's size in a lake file: its bytes and its share of its file's footer (its metadata, mostly)
    footer_shares = {id(footer): len(footer.raw) / max(1, len(footer.row_groups or ())) for footer in files}
    sizes = [group.length + footer_shares[id(footer)] for footer, group in pieces]
    n_files = max(1, round(sum(sizes) / target_size)) if part.groups_in_partition > 1 else None
    written = []
    start = 0
    try:
        for index, count in enumerate(plan_files(sizes, target_size, n_files)):
            chosen, start = pieces[start : start + count], start + count
            uri = part.output(version_root, index)
            with storage.atomic_output(uri, durable=False) as local:  # durable with the group's other files
                size = write_joined(local, chosen)
            written.append(WrittenFile(uri, size, sum(group.n_record for _, group in chosen)))
            published(written[-1])
    except FileNotFoundError as exc:
        raise _missing(str(exc.filename or part.uris[0])) from None
    return written


def _missing(uri: str) -> SnapshotError:
    return SnapshotError(
        f"staging file {uri} is missing (was the staging area cleaned?): start over with 'dbsnaplake run --fresh'"
    )


def iter_staging_file(
    uri: str,
    size: int,
    schema: pa.Schema,
    batch_rows: int,
    mapped: bool = True,
    read_ahead_bytes: int = 0,
    streamed: bool = False,
) -> Iterator[pa.Table]:
    """Stream one staging file as tables of at most ``batch_rows`` rows, conformed to the lake schema, never the
    whole file at once. When a row group fits ``batch_rows``, a row group at a time: its column chunks fetched in
    one coalesced read (not one per column); else a batch at a time, column chunk by column chunk. ``mapped=False``:
    a local file is read with plain reads, not through a memory map. ``read_ahead_bytes``: on S3, bytes each GET
    fetches at least (see :func:`storage.open_input_file`), so one GET serves several row groups; ``streamed``: one
    GET for the whole file."""
    try:
        open_file = storage.open_input_file if mapped else storage.open_for_streaming
        with open_file(uri, size, read_ahead_bytes, streamed) as f:
            parquet = pq.ParquetFile(f, pre_buffer=False)
            metadata = parquet.metadata
            if all(metadata.row_group(i).num_rows <= batch_rows for i in range(metadata.num_row_groups)):
                coalesced = pq.ParquetFile(f, metadata=metadata, pre_buffer=storage.is_s3(uri))  # footer read once
                yield from (conform(t, schema, uri) for t in read_row_groups(coalesced))
                return
            for batch in parquet.iter_batches(batch_size=batch_rows):
                yield conform(pa.Table.from_batches([batch]), schema, uri)
    except FileNotFoundError:
        raise _missing(uri) from None


def read_staging_file(uri: str, size: int, schema: pa.Schema) -> pa.Table:
    """One staging file whole, conformed to the lake schema (a small partition's: see :func:`read_packed`)."""
    try:
        with storage.open_input_file(uri, size) as f:
            return conform(pq.ParquetFile(f, pre_buffer=storage.is_s3(uri)).read(use_threads=False), schema, uri)
    except FileNotFoundError:
        raise _missing(uri) from None


def read_packed(parts: list[PartitionSlice], schema: pa.Schema, memory: int) -> dict[str, list[pa.Table]] | None:
    """The staging files of a packed group's partitions, read whole and at once (many small files: the cost is
    in opening each), by partition; ``None`` when they would not fit the merge's share of ``memory``."""
    if sum(p.size for p in parts) * IN_MEMORY_RATIO_GUESS > memory * MERGE_MEMORY_SHARE:
        return None
    files = [(p.partition, uri, size) for p in parts for uri, size in zip(p.uris, p.sizes, strict=True)]
    tables = map_io(lambda file: read_staging_file(file[1], file[2], schema), files, threads=PARALLEL_IO)
    by_partition: dict[str, list[pa.Table]] = {p.partition: [] for p in parts}
    for (partition, _, _), table in zip(files, tables, strict=True):
        by_partition[partition].append(table)
    return by_partition


def encode_partition(
    part: PartitionSlice,
    schema: pa.Schema,
    config: PipelineConfig,
    header: PartitionFileGroup,
    report: Report | None,
    staging: list[pa.Table] | None = None,
    published: Published = no_one,
) -> list[WrittenFile]:
    """Merge a partition's staging files (or sort its ``staging`` rows, read already) and write them as data-lake
    files of about the target size."""
    memory = config.memory_per_worker
    bytes_per_row = max(1.0, part.size / max(1, part.n_record))  # at least 1: a group of 0 rows (an empty table)
    if staging is not None:
        rows = [sort_table(pa.concat_tables(staging), config.sort_by)] if staging else []
        stream: Generator[pa.Table, None, None] = (table for table in rows)
    else:
        merge_memory = memory * MERGE_MEMORY_SHARE
        n_files = max(1, len(part.uris))
        batch_rows = int(merge_memory / (n_files * bytes_per_row * IN_MEMORY_RATIO_GUESS))
        batch_rows = max(1024, min(65_536, batch_rows))
        mapped = part.size <= memory * MAPPED_SHARE
        ahead = min(storage.STREAM_READ_AHEAD, int(merge_memory / (READ_AHEAD_PARTS * n_files)))
        streamed = n_files <= MERGE_STREAMS
        runs = [
            iter_staging_file(u, s, schema, batch_rows, mapped, ahead, streamed)
            for u, s in zip(part.uris, part.sizes, strict=True)
        ]
        merged = merge_sorted_runs(runs, config.sort_by) if config.sort_by else itertools.chain.from_iterable(runs)
        stream = read_ahead(merged)  # decoded and merged on a thread while encoded
    with RollingParquetWriter(
        lambda k: part.output(header.version_root, k),
        schema,
        target_size=header.target_file_size,
        expected_rows=part.n_record,
        bytes_per_row=bytes_per_row,
        balanced=part.groups_in_partition > 1,
        compression=config.compression,
        max_row_group_memory=int(memory * ROW_GROUP_MEMORY_SHARE),
        published=published,
    ) as writer, contextlib.closing(stream) as tables:
        for table in tables:
            writer.write(table)
            if report is not None:
                report(0, round(part.size * table.num_rows / max(1, part.n_record)), table.num_rows)
        written = writer.close()
    if not written:  # a table of 0 rows: one empty file with the schema, so DuckDB, Polars and Spark open the lake
        written = [write_empty_file(part.output(header.version_root, 0), schema, config)]
        published(written[0])
    return written


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
    parts = partition_slices(manifest, header)
    target = header.target_file_size
    published: Published = no_one if report is None else lambda file: report.published(file.uri, file.size)
    footers = map_io(lambda p: staging_footers(p, target), parts, threads=PARALLEL_IO)
    to_copy: list[PartitionSlice] = []
    to_join: list[tuple[PartitionSlice, list[Footer]]] = []
    for part, staged in zip(parts, footers, strict=True):
        if staged is None or not in_lake_encoding(staged, part.counts, schema, config.compression):
            continue
        if can_copy(part, target):
            to_copy.append(part)
        elif (ordered := joinable(staged, config.sort_by, schema, target)) is not None:
            to_join.append((part, ordered))
    copies = map_io(lambda p: copy_partition(p, header.version_root), to_copy, threads=PARALLEL_IO)
    for file in copies:
        published(file)
    copied = {part.partition: [file] for part, file in zip(to_copy, copies, strict=True)}
    joined = {
        part.partition: join_partition(part, staged, header.version_root, target, published)
        for part, staged in to_join
    }
    to_encode = [part for part in parts if part.partition not in copied and part.partition not in joined]
    packed = read_packed(to_encode, schema, config.memory_per_worker) if header.packed else None
    outputs: list[list[WrittenFile]] = []
    for part in parts:
        done = copied.get(part.partition) or joined.get(part.partition)
        if done is not None:
            outputs.append(done)
            if report is not None:
                report(0, part.size, part.n_record)
        else:
            staging = packed.pop(part.partition) if packed is not None else None
            outputs.append(encode_partition(part, schema, config, header, report, staging, published))
        check_rows(part, outputs[-1], group_manifest)
    if report is not None:
        report(manifest.n_file, 0, 0)
    map_io(
        lambda done: remove_stale_outputs(
            header.version_root, done[0].partition, done[0].group_in_partition, done[0].groups_in_partition,
            {f.uri for f in done[1]},
        ),
        list(zip(parts, outputs, strict=True)),
        threads=PARALLEL_IO,
    )
    pa.default_memory_pool().release_unused()  # a worker's next task starts from a small heap
    files = [f for written in outputs for f in written]
    result = CompactResult(
        group=header.group,
        partition=header.partition,
        n_file_in=manifest.n_file,
        size_in=manifest.size,
        n_record=sum(p.n_record for p in parts),
        files=tuple(files),
        timing=GroupTiming.since(started_at),
        file_partitions=tuple(p.partition for p, written in zip(parts, outputs, strict=True) for _ in written)
        if header.packed
        else (),
        n_copied=len(copied),
        n_joined=sum(len(files) for files in joined.values()),
    )
    Ledger(config.location).mark_done(COMPACT, result)  # last: every file exists
    return result


def check_rows(part: PartitionSlice, written: list[WrittenFile], group_manifest: str) -> None:
    """The files written hold as many rows as the staging files the manifest lists."""
    n_written = sum(f.n_record for f in written)
    if n_written != part.n_record:
        raise SnapshotError(
            f"partition {part.partition or '(unpartitioned)'}: wrote {n_written} records but the staging manifest "
            f"{group_manifest} lists {part.n_record}; rerun the ETL stage"
        )
