"""Stage 2, ETL to staging: one worker reads one snapshot file group, transforms it, partitions it, sorts each
partition and writes one staging Parquet file per partition, then the group's staging manifest.

The group's files are read into *chunks* of about 32 MiB of Arrow (many small files together, or a big Parquet
file in slices of a few MiB), and each chunk is transformed, split by partition and converted to the lake's types at
once: the cost per file is a read, not a transform. Each partition's rows stay in memory as plain Arrow; at the end
they are sorted once (one sort of the key columns, then a few gathers) and streamed into the partition's staging
file, written with a cheap codec (staging is temporary); or, when they came in ``--sort-by`` order already (snapshots
exported in key or time order), in the lake's encoding with lake-sized row groups, which compaction copies into lake
files as they are (see :mod:`dbsnaplake.stages.compact`). Should a group's rows outgrow ``--worker-memory`` (the
planner sizes groups so they do not), the biggest partitions are sorted and spilled to local disk as runs, merged
with the rest at the end. The transform is applied to a chunk of files at a time: it must work row by row (SQL
``SELECT`` expressions, ``with_columns``, filters), not aggregate across rows; with ``--transform-scope group`` it
is applied to the whole group as one frame instead (the planner sizes groups so that fits the worker's memory).

Output names derive from the group number alone (``datalake/<partition>/group-000007.parquet``), so a rerun of
a group overwrites its own files instead of adding new ones.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from dbsnaplake import storage
from dbsnaplake.config.settings import PipelineConfig, planned_config
from dbsnaplake.errors import DbSnapLakeError, SnapshotError, TransformError
from dbsnaplake.frames import fingerprint
from dbsnaplake.frames.parquet_join import JOIN_MIN_ROW_GROUP_SHARE
from dbsnaplake.frames.partitioning import partition_path
from dbsnaplake.frames.polars_reader import PolarsRead, read_in_polars
from dbsnaplake.frames.readers import (
    PARQUET,
    FileToRead,
    ReadResult,
    detect_format,
    read_parquet_batches,
    read_snapshot_file,
    read_table,
)
from dbsnaplake.frames.schema import conform, decode_schema, encode_schema, unify
from dbsnaplake.frames.sorting import check_sort_keys, merge_sorted_runs, sorted_order
from dbsnaplake.frames.transform import apply_transform
from dbsnaplake.frames.types import for_polars, lake_schema, to_lake
from dbsnaplake.frames.writer import MAX_ROW_GROUP_ROWS, ROW_GROUPS_PER_FILE, dictionary_columns, open_parquet_writer
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
from dbsnaplake.memory import ETL_CHUNK_BYTES, RSS_SPILL_SHARE, etl_rows_budget, resident_memory
from dbsnaplake.progress import Report
from dbsnaplake.read_ahead import batches, read_ahead
from dbsnaplake.records import EtlResult, GroupTiming, SnapshotFileGroup, SnapshotReader, SortKey, StagingFileGroup
from dbsnaplake.sources.readers import SOURCE_READERS

COMPAT = pl.CompatLevel.oldest()

STAGING_ROW_GROUP_ROWS = 65_536  # small row groups keep the compaction merge's memory low
MIN_LAKE_ROW_GROUP_ROWS = 1024
"""Row groups of fewer rows cost more in metadata than they hold (tiny targets): compaction then decodes them."""
STAGING_COMPRESSION = "lz4_raw"
"""Staging files are temporary: a cheap codec (written and read once more by compaction). Low-cardinality columns
are dictionary-encoded as in the lake (that is what makes them small), the others stay plain."""
LAKE_CODEC_SHARE = 0.5
"""A partition whose rows in a group are estimated at this share of ``--target-file-size`` or more is staged in the
lake's codec instead: when the partition has no rows in other groups (snapshot files ordered by the partition key,
a common case), compaction copies that file as it is instead of decoding and encoding it again."""
GATHERS = 4  # a partition's sorted rows are gathered in this many parts: 1/4 of it more in memory at most
READ_AHEAD_BYTES = ETL_CHUNK_BYTES // 4
"""Snapshot rows read ahead on a thread in batches of about this many Arrow bytes (see :mod:`dbsnaplake.read_ahead`)."""
MAX_CHUNK_PIECES = 16
"""A chunk of more pieces (small files) is copied into one contiguous chunk before it is transformed."""
READ_AHEAD_MIN_FILE_BYTES = 1024**2
"""Snapshot files are read ahead on a thread when they average at least this size (see :func:`read_group`)."""
POLARS_MIN_FILE_BYTES = 256 * 1024
"""Parquet files from this size are decoded by Polars (when it decodes them alike): half pyarrow's CPU for a file of a
MiB, with the conversion to Polars; a smaller file costs more in Polars (measured: 1.2 ms against 0.8 for a file of a
few KiB, its footer parsed twice), and 50,000 of them would take 1.6x longer."""
SPILL_ROWS = 65_536  # rows per batch of a spilled run, read back one batch at a time while merging


@dataclass
class PartitionRows:
    """One partition's rows so far: unsorted pieces in memory, and sorted runs spilled to local disk when the
    group outgrew the worker's memory (rare: the planner sizes groups to fit)."""

    pieces: list[pa.Table] = field(default_factory=list)
    spilled: list[Path] = field(default_factory=list)
    n_record: int = 0
    nbytes: int = 0
    rows_fingerprint: int = 0
    """The fingerprint of every row added (see :mod:`dbsnaplake.frames.fingerprint`)."""
    first_chunk: int = 0
    last_chunk: int = 0
    """The group's chunks (by number) the partition's first and last rows came from."""

    def add(self, table: pa.Table, rows_fingerprint: int, chunk: int = 0) -> None:
        if not self.n_record:
            self.first_chunk = chunk
        self.last_chunk = chunk
        self.pieces.append(table)
        self.n_record += table.num_rows
        self.nbytes += table.nbytes
        self.rows_fingerprint = fingerprint.combine([self.rows_fingerprint, rows_fingerprint])

    def held(self, schema: pa.Schema, source: str) -> pa.Table:
        """The rows in memory as one table of ``schema`` (no copy when every piece has it already)."""
        return pa.concat_tables([conform(piece, schema, source) for piece in self.pieces])

    def spill(self, folder: Path, sort_by: Sequence[SortKey]) -> int:
        """Write the rows in memory, sorted, to a local Arrow file; return the bytes freed."""
        freed = self.nbytes
        schema = unify([("", piece.schema) for piece in self.pieces])
        path = folder / f"run-{id(self)}-{len(self.spilled)}.arrow"
        slices = sorted_slices(self.held(schema, str(path)), sort_by, SPILL_ROWS)  # the only reference to the rows
        self.pieces, self.nbytes = [], 0
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for part in slices:
                writer.write_table(part)
        self.spilled.append(path)
        return freed


def one_chunk(columns: list[pa.ChunkedArray], schema: pa.Schema) -> pa.Table:
    """A table of ``columns``, each made one contiguous chunk, a column at a time: when the list holds the only
    references (the caller dropped its table), each column's pieces are freed once it is copied, so at most one
    column is held twice."""
    for index, column in enumerate(columns):
        columns[index] = column.combine_chunks()
    return pa.Table.from_arrays(columns, schema=schema)


def sorted_slices(table: pa.Table, sort_by: Sequence[SortKey], rows: int) -> Iterator[pa.Table]:
    """``table`` in ``sort_by`` order, ``rows`` rows at a time (see :func:`gathered_slices`)."""
    return gathered_slices(table, sorted_order(table, sort_by), rows)


def gathered_slices(table: pa.Table, indices: pa.Array | None, rows: int) -> Iterator[pa.Table]:
    """``table``'s rows ``indices`` (all, in order, when ``None``), ``rows`` rows at a time: a few gathers, so the
    sorted copy is never whole in memory. Rows in order already are only sliced. Others are first made one chunk: a
    gather from a table of many chunks costs about as much however few rows it takes, from one chunk what it takes."""
    if indices is None:  # no sort, or the rows were in order already: no copy
        yield from (table.slice(start, rows) for start in range(0, table.num_rows, rows))
        return
    if table.column(0).num_chunks > 1:
        columns, schema = table.columns, table.schema
        del table  # the columns' pieces are freed as they are copied
        table = one_chunk(columns, schema)
    step = max(rows, -(-table.num_rows // GATHERS))
    for start in range(0, table.num_rows, step):
        gathered = table.take(indices.slice(start, step))
        yield from (gathered.slice(offset, rows) for offset in range(0, gathered.num_rows, rows))


def _read_spilled(path: Path, schema: pa.Schema) -> Iterator[pa.Table]:
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_file(source)
        for index in range(reader.num_record_batches):
            yield conform(pa.Table.from_batches([reader.get_batch(index)]), schema, str(path))


def read_group_file(
    file: FileToRead,
    schema: pa.Schema | None,
    reader: SnapshotReader | None,
    on_bad_value: str,
    in_polars: bool = False,
) -> Iterator[Read]:
    """One snapshot file's rows (conformed to the group's schema when known), whole or in slices of a few MiB for
    a Parquet file bigger than a chunk; its record count checked once all are read. Each is checked unchanged
    since the manifest (size, ETag): a file read whole from S3 by the answer that brings its bytes. ``in_polars``:
    a Parquet file read whole, of :data:`POLARS_MIN_FILE_BYTES` or more, is decoded by Polars when it gives the same
    rows (:func:`read_in_polars`)."""
    parquet = reader is None and detect_format(file.uri).kind == PARQUET
    in_polars = in_polars and parquet and (file.size or 0) >= POLARS_MIN_FILE_BYTES
    results: Iterable[Read]
    if parquet and (file.size or 0) > ETL_CHUNK_BYTES:
        file.check_unchanged()
        results = (ReadResult(t) for t in read_parquet_batches(file.uri, file.size, READ_AHEAD_BYTES))
    elif reader is None and storage.is_s3(file.uri):
        data = file.read_unchanged()
        decoded = read_in_polars(data, schema) if in_polars else None
        results = [decoded or ReadResult(read_table(file.uri, file.size, data=data))]
    else:
        file.check_unchanged()
        decoded = read_in_polars(file.uri, schema) if in_polars else None
        results = [decoded or read_snapshot_file(file, reader, on_bad_value, SOURCE_READERS)]
    n_record = 0
    for result in results:
        n_record += result.num_rows
        if schema is None or isinstance(result, PolarsRead):  # Polars decodes files of the group's schema only
            yield result
        else:
            yield ReadResult(conform(result.table, schema, file.uri), result.n_bad_value)
    if file.expected_records is not None and n_record != file.expected_records:
        raise SnapshotError(f"{file.uri} holds {n_record} records but the manifest says {file.expected_records}")


def group_files(manifest: Manifest) -> Iterator[FileToRead]:
    """The group's files, each with its manifest row's other columns (a source's checksums, ...)."""
    extra_names = [name for name in manifest.files.column_names if name not in FILES_SCHEMA.names]
    extras = manifest.files.select(extra_names).to_pylist() if extra_names else [{}] * manifest.n_file
    columns = (manifest.column(URI), manifest.column(SIZE), manifest.column(N_RECORD), extras, manifest.column(ETAG))
    for uri, size, expected, extra, etag in zip(*columns, strict=True):
        yield FileToRead(uri, size, expected, extra, etag)


def transform_file(spec: str | None, frame: pl.DataFrame, uri: str) -> pl.DataFrame:
    try:
        return apply_transform(spec, frame)
    except TransformError as exc:
        raise TransformError(f"{exc} (on {uri})") from None


@dataclass(frozen=True)
class PartitionSplit:
    """Where a chunk's partitions are: ``order`` puts the rows of each partition together (``None``: they are
    together already), partition ``i`` (Hive path ``paths[i]``) being rows
    ``starts[i]:starts[i + 1]`` of that order."""

    paths: list[str]
    starts: list[int]
    order: pa.Array | None


def one_partition(frame: pl.DataFrame, keys: tuple[str, ...]) -> bool:
    """Whether every row has the first row's partition key values, by comparing them (no grouping): the common
    case of a chunk of snapshot files ordered by the partition key. Keys of other types than integers, text,
    booleans, dates and times are left to the grouping (a float's -0.0 and 0.0 compare equal, but are two folders)."""
    for key in keys:
        column = frame.get_column(key)
        if not (column.dtype.is_integer() or column.dtype.is_temporal() or column.dtype in (pl.String, pl.Boolean)):
            return False
        first = column[0]
        if first is None:
            if column.null_count() != frame.height:
                return False
        elif column.null_count() or not (column == first).all():
            return False
    return True


def split_partitions(frame: pl.DataFrame, keys: tuple[str, ...]) -> PartitionSplit:
    """The partitions of ``frame``'s rows by ``keys``, sorted by path; within one, rows keep their order."""
    if not keys:
        return PartitionSplit([""] if frame.height else [], [0, frame.height] if frame.height else [0], None)
    if frame.height and one_partition(frame, keys):
        return PartitionSplit([partition_path(keys, frame.select(keys).row(0))], [0, frame.height], None)
    row = "__dbsnaplake_row"  # not a key's name: the keys are the frame's only other columns here
    groups = frame.select(keys).with_row_index(row).group_by(keys, maintain_order=True).agg(pl.col(row))
    by_path: dict[str, list[pl.Series]] = {}
    for values, rows in zip(groups.select(keys).iter_rows(), groups[row], strict=True):
        # "" and null (or NaN and null) are two groups but one Hive folder: written as one partition
        by_path.setdefault(partition_path(keys, values), []).append(rows)
    paths = sorted(by_path)
    pieces = [pl.concat(by_path[path]).sort() if len(by_path[path]) > 1 else by_path[path][0] for path in paths]
    lengths = [len(piece) for piece in pieces]
    starts = [0, *itertools.accumulate(lengths)]
    order = pl.concat(pieces).cast(pl.Int64) if pieces else pl.Series([], dtype=pl.Int64)
    if order.is_sorted():  # the partitions' rows are together already (files ordered by the partition key)
        return PartitionSplit(paths, starts, None)
    return PartitionSplit(paths, starts, order.to_arrow())


def partition_fingerprints(hashes: np.ndarray, starts: list[int]) -> list[int]:
    """Each partition's fingerprint (the sum of its rows' hashes, mod 2**64) from the rows' hashes in partition
    order, partition ``i`` being ``hashes[starts[i]:starts[i + 1]]``."""
    if len(starts) < 2:
        return []
    sums = np.add.reduceat(hashes, starts[:-1], dtype=np.uint64)  # uint64 sums wrap: mod 2**64
    return [int(total) for total in sums]


Read = ReadResult | PolarsRead
"""A snapshot file's rows (or a slice of them): decoded by pyarrow, or by Polars (see :mod:`.polars_reader`)."""


def rows_of(reads: Sequence[Read], where: str) -> tuple[pl.DataFrame, pa.Schema]:
    """Reads (of ``where``) as one Polars frame, and the Arrow schema of their rows (the lake's types are made from
    it). Reads by pyarrow of other schemas (a whole group may hold them) are promoted; those of many small files
    copied into one contiguous frame: every later step (the transform, the split's gather, the hashing, the
    conversions) pays per chunk, and thousands of chunks of a few rows cost more than one copy of the rows."""
    contiguous = len(reads) > MAX_CHUNK_PIECES
    if all(isinstance(read, PolarsRead) for read in reads):  # of one schema (Chunk.fits)
        frames = [read.frame for read in reads if isinstance(read, PolarsRead)]
        frame = pl.concat(frames, rechunk=contiguous) if len(frames) > 1 else frames[0]
        return frame, reads[0].schema
    tables = [read.table for read in reads if isinstance(read, ReadResult)]
    same = all(table.schema.equals(tables[0].schema) for table in tables)
    table = pa.concat_tables(tables, promote_options="default" if same else "permissive")
    table = table.combine_chunks() if contiguous else table
    converted = pl.from_arrow(for_polars(table, where), rechunk=False)
    assert isinstance(converted, pl.DataFrame)
    return converted, table.schema


@dataclass
class Chunk:
    """Snapshot rows read but not yet transformed: reads of one schema and one decoder, by the file they came
    from."""

    files: list[tuple[str, list[Read]]] = field(default_factory=list)
    nbytes: int = 0

    def fits(self, read: Read) -> bool:
        if not self.files:
            return True
        first = self.files[0][1][0]
        return type(first) is type(read) and first.schema.equals(read.schema)

    def add(self, read: Read, uri: str) -> None:
        if not self.files or self.files[-1][0] != uri:
            self.files.append((uri, []))
        self.files[-1][1].append(read)
        self.nbytes += read.nbytes

    def rows(self) -> tuple[pl.DataFrame, pa.Schema]:
        """The chunk's rows as one frame (see :func:`rows_of`)."""
        return rows_of([read for _, reads in self.files for read in reads], self.where)

    @property
    def where(self) -> str:
        first = self.files[0][0]
        return first if len(self.files) == 1 else f"{first} or one of the {len(self.files) - 1} files after it"


@dataclass
class GroupRows:
    """What a group's transformed rows became: each partition's rows, the output schemas seen, the counts."""

    config: PipelineConfig
    budget: int
    spill_folder: Path
    partitions: dict[str, PartitionRows] = field(default_factory=dict)
    out_schemas: list[tuple[str, pa.Schema]] = field(default_factory=list)
    n_record_out: int = 0
    held: int = 0
    n_chunks: int = 0
    rss_limit: int = 0
    """Resident memory past which the rows are spilled too (see :data:`dbsnaplake.memory.RSS_SPILL_SHARE`)."""
    dictionary: list[str] | None = None
    """The columns staging files dictionary-encode: chosen from the group's first rows, for all its files."""

    def add_chunk(self, chunk: Chunk) -> None:
        """Transform, split and keep one chunk's rows; on a failure with several files, the file that fails is
        named (each file alone is transformed again to find it)."""
        self.n_chunks += 1
        try:
            self._add(*chunk.rows(), chunk.where)
        except DbSnapLakeError:
            if len(chunk.files) < 2:
                raise
            for uri, reads in chunk.files:
                self._add(*rows_of(reads, uri), uri, dry_run=True)
            raise
        over_rss = 0 < self.rss_limit < resident_memory() and self.held > self.budget // 4  # runs not too small
        if self.held > self.budget or over_rss:
            self.spill()

    def _add(self, frame: pl.DataFrame, source_schema: pa.Schema, where: str, dry_run: bool = False) -> None:
        """Transform a chunk (its rows in ``frame``, read as ``source_schema``), convert it to the lake's types,
        fingerprint its rows and split it by partition: each step once for the whole chunk (a chunk of a thousand
        partitions costs one conversion, not a thousand)."""
        config = self.config
        out = transform_file(config.transform, frame, where)
        config.require_output_columns(out.columns)
        dropped = [] if config.partition_columns_in_files else list(config.partition_by)
        polars_schema = out.head(0).drop(dropped).to_arrow(compat_level=COMPAT).schema
        schema = lake_schema(polars_schema, source_schema, config.keep_nanoseconds)
        check_sort_keys(schema, config.sort_by, where)
        split = split_partitions(out, config.partition_by)
        kept = out.drop(dropped)
        rows = to_lake(kept.to_arrow(compat_level=COMPAT), source_schema, config.keep_nanoseconds, where)
        if dry_run:
            return
        hashes = fingerprint.row_hashes(rows, kept)
        if self.dictionary is None and rows.num_rows:
            self.dictionary = dictionary_columns(rows)
        if split.order is not None:
            rows, hashes = rows.take(split.order), hashes[split.order.to_numpy()]
        self.n_record_out += out.height
        if not any(schema.equals(seen) for _, seen in self.out_schemas):
            self.out_schemas.append((where, schema))
        sums = partition_fingerprints(hashes, split.starts)
        chunk = self.n_chunks - 1
        for path, start, end, rows_fingerprint in zip(split.paths, split.starts[:-1], split.starts[1:], sums, strict=True):
            part = rows.slice(start, end - start)
            self.partitions.setdefault(path, PartitionRows()).add(part, rows_fingerprint, chunk)
            self.held += part.nbytes

    def spill(self) -> None:
        """Move every partition's rows in memory to sorted runs on local disk, biggest first, until under half the
        budget; then hand the memory freed back to the system (the allocators would keep it)."""
        for rows in sorted(self.partitions.values(), key=lambda r: -r.nbytes):
            if self.held <= self.budget // 2 or not rows.pieces:
                break
            self.held -= rows.spill(self.spill_folder, self.config.sort_by)
        pa.default_memory_pool().release_unused()


def read_group(
    files: Iterable[FileToRead],
    header: SnapshotFileGroup,
    rows: GroupRows,
    report: Report | None,
    ahead_on_thread: bool = True,
) -> tuple[int, int]:
    """Read the group's files into chunks and hand each to ``rows``; return (records read, bad values).
    ``ahead_on_thread``: read the next files on a thread meanwhile (not for tiny files, where the reading is Python
    holding the GIL, and a thread only competes with the transform for it: measured 50,000 files 1.7x slower)."""
    config = rows.config
    schema = decode_schema(header.schema) if header.schema else None
    whole_group = config.transform_scope == "group"  # one chunk: the transform sees the whole group at once
    chunk = Chunk()
    n_record_in = n_bad_value = file_rows = 0
    reads = (
        (file, read)
        for file in files
        for read in itertools.chain(
            read_group_file(file, schema, header.reader, config.on_bad_value, in_polars=not whole_group), [None]
        )
    )
    # the next files are read and decoded on a thread while this chunk is transformed: a batch ahead at most
    batched = batches(reads, lambda item: item[1].nbytes if item[1] else 0, READ_AHEAD_BYTES)
    ahead = read_ahead(batched, depth=1) if ahead_on_thread else (batch for batch in batched)
    with contextlib.closing(ahead):
        for file, read in itertools.chain.from_iterable(ahead):
            if read is None:  # the file is read whole
                n_record_in += file_rows
                if report is not None:
                    report(1, file.size or 0, file_rows)
                file_rows = 0
                continue
            n_bad_value += read.n_bad_value
            file_rows += read.num_rows
            if not whole_group and (not chunk.fits(read) or chunk.nbytes >= ETL_CHUNK_BYTES):
                rows.add_chunk(chunk)
                chunk = Chunk()
            chunk.add(read, file.uri)
    if chunk.files:
        rows.add_chunk(chunk)
    return n_record_in, n_bad_value


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


@dataclass
class SortedPartition:
    """A partition's rows, ready to be streamed in ``--sort-by`` order: those in memory with their sort order
    (found once), and its spilled runs."""

    held: pa.Table | None
    order: pa.Array | None
    """The held rows' order (``None``: they are in order already)."""
    spilled: list[Path]
    sort_by: tuple[SortKey, ...]

    @classmethod
    def of(cls, rows: PartitionRows, schema: pa.Schema, sort_by: tuple[SortKey, ...], source: str) -> SortedPartition:
        held = rows.held(schema, source) if rows.pieces else None
        rows.pieces = []
        return cls(held, sorted_order(held, sort_by) if held is not None else None, rows.spilled, sort_by)

    @property
    def came_in_order(self) -> bool:
        """Whether the rows came in ``--sort-by`` order (or there is none): held, and in order as they were read."""
        return not self.spilled and self.order is None

    def stream(self, schema: pa.Schema, rows: int) -> Iterator[pa.Table]:
        """The rows in order, ``rows`` at a time: those in memory merged with the spilled runs."""
        held, self.held = self.held, None
        in_memory = gathered_slices(held, self.order, rows) if held is not None else iter(())
        if not self.spilled:
            return in_memory
        runs = [_read_spilled(path, schema) for path in self.spilled] + [in_memory]
        merged = merge_sorted_runs(runs, self.sort_by) if self.sort_by else itertools.chain.from_iterable(runs)
        return rebatch(merged, rows)


def staging_codec(
    config: PipelineConfig,
    partition_rows: int,
    group_rows: int,
    group_size: int,
    may_be_whole: bool = True,
    came_in_order: bool = False,
) -> str:
    """The codec of a partition's staging file: the lake's when compaction may copy the file as it is or join it
    with the partition's other files (row groups copied, not encoded again), else the cheap one. Compaction may
    join files whose rows came in ``--sort-by`` order (snapshot files exported in key or time order: the groups'
    files then follow one another) and are estimated (by their share of the group's rows and bytes) big enough
    (:data:`JOIN_MIN_ROW_GROUP_SHARE` of the target: tiny partitions are decoded and packed together instead, and
    the lake's codec costs more per file), and copy a file when the partition may lie wholly in this group
    (``may_be_whole``) and the file is a good part of a lake file."""
    estimated_size = group_size * partition_rows / max(1, group_rows)
    joinable = came_in_order and estimated_size >= JOIN_MIN_ROW_GROUP_SHARE * config.target_file_size
    big_enough = estimated_size >= LAKE_CODEC_SHARE * config.target_file_size
    return config.compression if joinable or (may_be_whole and big_enough) else STAGING_COMPRESSION


def lake_row_group_rows(config: PipelineConfig, bytes_per_row: float) -> int:
    """Rows per row group of a staging file in the lake's encoding: lake-sized (an eighth of the target, as
    :class:`~dbsnaplake.frames.writer.RollingParquetWriter` writes them), since compaction may copy them into the
    lake as they are. ``bytes_per_row``: of the group's files in the lake's encoding written so far, or at first
    of the snapshot's."""
    rows = int(config.target_file_size / ROW_GROUPS_PER_FILE / max(bytes_per_row, 1e-3))
    return max(MIN_LAKE_ROW_GROUP_ROWS, min(MAX_ROW_GROUP_ROWS, rows))


def may_be_whole(partition: PartitionRows, n_chunks: int, n_group: int) -> bool:
    """Whether a partition may lie wholly in this group: the plan's only group, or rows in none of the group's
    first and last chunks. A partition in the first or the last chunk most likely goes on in the neighbouring
    group (snapshot files ordered by the partition key, the case where partitions can lie in one group at all):
    staged in the lake's codec, it would be decoded and encoded again by compaction anyway."""
    return n_group == 1 or (partition.first_chunk > 0 and partition.last_chunk < n_chunks - 1)


@dataclass(frozen=True)
class StagingEncoding:
    """How a staging file is encoded: its codec, whether it has column statistics (a file compaction may copy into
    the lake must), its dictionary-encoded columns (chosen once per group: a group writes thousands of files) and
    its rows per row group."""

    codec: str
    statistics: bool
    dictionary: list[str]
    row_group_rows: int = STAGING_ROW_GROUP_ROWS


def write_staging_file(uri: str, tables: Iterator[pa.Table], encoding: StagingEncoding, n_record: int) -> int:
    """Write a partition's ``n_record`` rows (in order) into one staging Parquet file; return its size."""
    if n_record <= encoding.row_group_rows:
        return _write_rows(uri, tables, encoding)
    # a partition of several row groups: the next one is gathered on a thread while this one is encoded
    with contextlib.closing(read_ahead(tables)) as ahead:
        return _write_rows(uri, ahead, encoding)


def _write_rows(uri: str, tables: Iterator[pa.Table], encoding: StagingEncoding) -> int:
    # the file is made durable with the group's other files, before its done-marker (see Ledger.mark_done)
    with storage.atomic_output(uri, durable=False) as local:
        first = next(tables)  # a partition has at least one row
        with (
            pa.OSFile(str(local), "wb") as sink,
            open_parquet_writer(sink, first, encoding.codec, encoding.statistics, encoding.dictionary) as writer,
        ):
            for table in itertools.chain([first], tables):
                writer.write_table(table, row_group_size=encoding.row_group_rows)
        return local.stat().st_size


def etl(group_manifest: str, config: PipelineConfig | None = None, report: Report | None = None) -> EtlResult:
    """Process one snapshot file group end to end. Safe to rerun: it rewrites the same files.

    The settings are the plan's (in the group manifest's header); ``config``, when given, must agree with them.
    ``report`` is told about each snapshot file once it is read and transformed."""
    started_at = time.time()
    manifest, header = read_group_manifest(group_manifest, SnapshotFileGroup)
    config = planned_config(header.settings, config, group_manifest)
    group = header.group
    with tempfile.TemporaryDirectory(prefix="dbsnaplake-etl-") as spill_folder:  # for runs spilled, if any
        rss_limit = int(config.memory_per_worker * RSS_SPILL_SHARE)
        rows = GroupRows(config, etl_rows_budget(config.memory_per_worker), Path(spill_folder), rss_limit=rss_limit)
        big_files = manifest.size >= READ_AHEAD_MIN_FILE_BYTES * max(1, manifest.n_file)
        n_record_in, n_bad_value = read_group(group_files(manifest), header, rows, report, big_files)
        out_schema = unify(rows.out_schemas)
        dictionary = [name for name in rows.dictionary or [] if name in out_schema.names]

        uris: list[str] = []
        sizes: list[int] = []
        fingerprints: list[int] = []
        counts: list[int | None] = []
        paths: list[str] = []
        lake_bytes = lake_rows = 0  # of the files written in the lake's encoding
        for path in sorted(rows.partitions):
            uri = config.location.staging_file(path, group)
            partition = rows.partitions.pop(path)
            ordered = SortedPartition.of(partition, out_schema, config.sort_by, uri)
            whole = may_be_whole(partition, rows.n_chunks, header.n_group)
            group_rows, group_size = rows.n_record_out, manifest.size
            codec = staging_codec(config, partition.n_record, group_rows, group_size, whole, ordered.came_in_order)
            # a file in the lake's codec may be copied into the lake as it is: it has the statistics and the row
            # groups lake files have; the others are only ever read in full, by compaction
            in_lake = codec == config.compression
            bytes_per_row = lake_bytes / lake_rows if lake_rows else group_size / max(1, group_rows)
            row_group_rows = lake_row_group_rows(config, bytes_per_row) if in_lake else STAGING_ROW_GROUP_ROWS
            encoding = StagingEncoding(codec, in_lake, dictionary, row_group_rows)
            stream = ordered.stream(out_schema, row_group_rows)
            sizes.append(write_staging_file(uri, stream, encoding, partition.n_record))
            if in_lake:
                lake_bytes, lake_rows = lake_bytes + sizes[-1], lake_rows + partition.n_record
            fingerprints.append(partition.rows_fingerprint)
            uris.append(uri)
            counts.append(partition.n_record)
            paths.append(path)
    n_record_out = rows.n_record_out

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
            staging_compression=STAGING_COMPRESSION,
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
