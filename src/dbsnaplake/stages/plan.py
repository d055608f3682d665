"""Stage 1, plan: inspect the snapshot, choose the group size, split files into snapshot file groups.

Everything is checked before anything is written: each file exists and has the size the manifest says, each
Parquet footer is readable, the files' schemas unify, and the transform (run on an empty frame) produces the
partition and sort columns. Only then are the group manifests written. A manifest dbsnaplake built from the files
holds what each Parquet footer said then, with the file's size and ETag (see :data:`manifest.PARQUET_SCHEMA`):
those footers are not read again (``--inspect-files all`` reads them), and the ETL stage refuses, naming it, a
file whose size or ETag is no longer the manifest's.

A manifest of more than 10,000 files is checked on an even sample of 1,000 (``--inspect-files auto``): one
request per file would dominate planning a million-file snapshot. Files not inspected are checked when the ETL
stage reads them (existence, record count, schema), which fails naming the file just the same.
"""

from __future__ import annotations

import io
import statistics
import time
from collections import Counter
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dbsnaplake import estimate, storage
from dbsnaplake.binpack import pack_in_order
from dbsnaplake.config.settings import PipelineConfig
from dbsnaplake.errors import ConfigError, DbSnapLakeError, SnapshotError
from dbsnaplake.frames.partitioning import check_column_names, check_no_empty_names, partition_path
from dbsnaplake.frames.readers import (
    PARQUET,
    FileToRead,
    detect_format,
    read_parquet_batches,
    read_parquet_footer,
    read_snapshot_file,
)
from dbsnaplake.frames.schema import decode_schema, encode_schema, unify
from dbsnaplake.frames.sorting import check_sort_keys
from dbsnaplake.frames.transform import apply_transform, output_schema
from dbsnaplake.frames.types import for_polars, lake_schema, refuse_unsupported
from dbsnaplake.layout import SNAPSHOT_FILE_GROUPS_FOLDER, snapshot_time, version_root, version_stamp
from dbsnaplake.ledger import Ledger, plan_fingerprint, refuse_rewriting_published
from dbsnaplake.manifest import (
    ETAG,
    FILES_SCHEMA,
    FOOTER_COLUMNS,
    N_RECORD,
    PARQUET_SCHEMA,
    SIZE,
    UNCOMPRESSED_SIZE,
    URI,
    Manifest,
    files_table,
    read_manifest,
    write_manifest,
)
from dbsnaplake.memory import etl_memory_per_byte, etl_working_memory
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import Estimate, GroupSizeChoice, PlanResult, SnapshotFileGroup, SnapshotReader, SnapshotStats
from dbsnaplake.roots import check_roots
from dbsnaplake.sources.readers import SOURCE_READERS
from dbsnaplake.storage.parallel import map_io
from dbsnaplake.units import format_size

MiB = 1024**2
MIN_GROUP_SIZE = 16 * MiB
INSPECT_ALL_UP_TO = 10_000
INSPECT_SAMPLE = 1_000
GROUPS_PER_WORKER = 4


def choose_group_size(
    stats: SnapshotStats, workers: int, memory_per_worker: int, transform_scope: str = "chunk"
) -> GroupSizeChoice:
    """The most snapshot bytes one ETL group may hold: small enough to fit a worker's memory, and small
    enough that every worker gets several groups (so work balances), but not uselessly small.

    An ETL worker needs about ``300 MiB + 5 x 32 MiB`` (a chunk of files being transformed, the next read ahead) plus
    ``4 x group size x uncompressed ratio`` (the group's rows, in Arrow, until sorted: see :mod:`dbsnaplake.memory`);
    with ``--transform-scope group`` the chunk is the whole group, and the bytes per group byte grow to match.
    """
    ratio = max(stats.in_memory_ratio, 1.0)
    per_byte = etl_memory_per_byte(transform_scope)
    working = etl_working_memory(transform_scope)
    free = max(0, memory_per_worker - working)
    by_memory = max(MiB, int(free / (per_byte * ratio)))
    by_balance = -(-stats.size // (workers * GROUPS_PER_WORKER))
    size = max(min(by_memory, by_balance), min(MIN_GROUP_SIZE, by_memory))
    reason = (
        f"group size {format_size(size)} = min(memory: ({format_size(memory_per_worker)} per worker - "
        f"{format_size(working)} for the interpreter and a chunk of files) / "
        f"({per_byte:g} x {ratio:.1f} in memory) = {format_size(by_memory)}, balance: "
        f"{format_size(stats.size)} / ({workers} workers x {GROUPS_PER_WORKER}) = {format_size(by_balance)}), "
        f"at least {format_size(min(MIN_GROUP_SIZE, by_memory))}"
    )
    return GroupSizeChoice(size, reason)


def refuse_groups_past_memory(
    config: PipelineConfig, stats: SnapshotStats, groups: list[list[int]], sizes: list[int], uris: list[str]
) -> None:
    """With ``--transform-scope group`` a whole group is transformed at once: refuse, before writing anything, a
    group (one big file, or ``--group-size``) that cannot fit ``--worker-memory``."""
    if config.transform_scope != "group" or not groups:
        return
    biggest = max(groups, key=lambda group: sum(sizes[i] for i in group))
    size = sum(sizes[i] for i in biggest)
    ratio = max(stats.in_memory_ratio, 1.0)
    needed = etl_working_memory("group") + int(size * ratio * etl_memory_per_byte("group"))
    if needed > config.memory_per_worker:
        what = uris[biggest[0]] if len(biggest) == 1 else f"the group of {len(biggest)} files from {uris[biggest[0]]}"
        raise ConfigError(
            f"--transform-scope group: {what} ({format_size(size)}, about {format_size(needed)} in memory while "
            f"transformed as one frame) does not fit --worker-memory {format_size(config.memory_per_worker)}: "
            "raise --worker-memory, lower --group-size, or use --transform-scope chunk"
        )


@dataclass(frozen=True)
class _Inspected:
    size: int
    n_record: int | None
    schema: pa.Schema | None
    uncompressed: int | None
    etag: str | None


def is_parquet_file(uri: str, has_reader: bool) -> bool:
    """By the file's name. Unknown names are refused, unless a source reader (DynamoDB Ion, ...) reads them."""
    try:
        return detect_format(uri).kind == PARQUET
    except SnapshotError:
        if has_reader:
            return False
        raise


def _inspect(uri: str, expected_size: int | None, etag: str | None, parquet: bool) -> _Inspected:
    """What planning learns of one file. Its size and ETag (on local disk: modification time and size) are checked
    against the manifest's, or recorded where the manifest has none, for ETL to check again."""
    info = None
    if not parquet or expected_size is None or etag is None:
        info = FileToRead(uri, expected_size, expected_records=None, etag=etag).check_unchanged()
    size = info.size if info is not None else expected_size
    assert size is not None
    found_etag = info.etag if info is not None else etag
    if not parquet:
        return _Inspected(size, None, None, None, found_etag)
    footer = read_parquet_footer(uri, size)
    return _Inspected(size, footer.n_record, footer.schema, footer.uncompressed_size, found_etag)


def recorded_footers(
    manifest: Manifest,
    uris: list[str],
    is_parquet: list[bool],
    sizes: list[int | None],
    records: list[int | None],
    etags: list[str | None],
) -> dict[int, _Inspected]:
    """The Parquet files whose footers the manifest's builder read (see :data:`manifest.PARQUET_SCHEMA`), by index,
    with what they said; files listed (``sizes``, ``records``, ``etags``: the manifest's columns) without their
    size, records and ETag are not among them."""
    if not all(name in manifest.files.column_names for name in FOOTER_COLUMNS):
        return {}
    columns = (manifest.column(PARQUET_SCHEMA), manifest.column(UNCOMPRESSED_SIZE), sizes, records, etags)
    schemas: dict[str, pa.Schema] = {}
    recorded = {}
    for index, (text, uncompressed, size, n_record, etag) in enumerate(zip(*columns, strict=True)):
        if not is_parquet[index] or text is None or uncompressed is None or size is None or n_record is None:
            continue
        if not etag:
            continue
        if text not in schemas:
            try:
                schemas[text] = decode_schema(text)
            except (pa.ArrowInvalid, ValueError) as exc:
                raise SnapshotError(
                    f"manifest {manifest.summary_uri}: the Parquet schema recorded for {uris[index]} cannot be read "
                    f"({exc}): rebuild the manifest with 'dbsnaplake manifest build'"
                ) from None
        recorded[index] = _Inspected(size, n_record, schemas[text], uncompressed, etag)
    return recorded


def distinct_schemas(found: list[tuple[str, pa.Schema]]) -> list[tuple[str, pa.Schema]]:
    """Each schema of ``(uri, schema)`` pairs once, with the first file that has it: a snapshot of 50,000 files
    has a few schemas, which are checked and unified once each, not once per file."""
    distinct: list[tuple[str, pa.Schema]] = []
    seen: set[int] = set()  # the schemas a manifest recorded are one object per distinct schema
    for uri, schema in found:
        if id(schema) in seen:
            continue
        seen.add(id(schema))
        if not any(schema.equals(other, check_metadata=True) for _, other in distinct):
            distinct.append((uri, schema))
    return distinct


def refuse_duplicates(uris: list[str], manifest_uri: str) -> None:
    """A file listed twice would put its rows twice in the data lake."""
    duplicates = sorted(uri for uri, count in Counter(uris).items() if count > 1)
    if duplicates:
        shown = ", ".join(duplicates[:3]) + (f" and {len(duplicates) - 3} more" if len(duplicates) > 3 else "")
        raise SnapshotError(
            f"manifest {manifest_uri} lists {len(duplicates)} file(s) more than once ({shown}): their rows would be "
            "in the data lake twice — fix the manifest, or rebuild it with 'dbsnaplake manifest build'"
        )


def files_to_inspect(n_file: int, mode: str, sizes: list[int | None]) -> list[int]:
    """Indices of the files whose footers (or sizes) planning reads; files of unknown size always."""
    if mode == "all" or (mode == "auto" and n_file <= INSPECT_ALL_UP_TO):
        return list(range(n_file))
    chosen = {i for i, size in enumerate(sizes) if size is None}
    if mode in ("auto", "sample") and n_file:
        step = max(1, n_file // INSPECT_SAMPLE)
        chosen.update(range(0, n_file, step))
        chosen.add(n_file - 1)
    return sorted(chosen)


def check_transform(config: PipelineConfig, schema: pa.Schema) -> pa.Schema:
    """Run the transform on an empty frame; the partition and sort columns must come out of it, the sort columns
    in types that can be sorted, and the lake's column names must be ones every reader keeps. Returns the output's
    lake schema."""
    check_no_empty_names(schema.names, "the snapshot")  # before Polars renames it column_<n>
    out = lake_schema(output_schema(config.transform, schema), schema, config.keep_nanoseconds)
    config.require_output_columns(out.names)
    check_sort_keys(out, config.sort_by, "the transform's output" if config.transform else "the snapshot")
    check_column_names(out.names, config.partition_by, "the data lake" if config.transform else "the snapshot")
    return out


def sample_schema(files: pa.Table, reader: SnapshotReader | None, on_bad_value: str) -> pa.Schema:
    """The schema of one file read as the ETL stage reads it (the smallest with records): how planning checks the
    transform and the columns of a snapshot whose schema no footer gives (CSV, NDJSON, a source's own reader)."""
    sizes, records = files[SIZE].to_pylist(), files[N_RECORD].to_pylist()
    index = min(range(len(sizes)), key=lambda i: (records[i] == 0 or sizes[i] == 0, sizes[i] or 0))
    extra = [name for name in files.column_names if name not in FILES_SCHEMA.names]
    extras = files.select(extra).slice(index, 1).to_pylist()[0] if extra else {}
    etag = files[ETAG][index].as_py()
    file = FileToRead(files[URI][index].as_py(), sizes[index], records[index], extras, etag)
    schema: pa.Schema = read_snapshot_file(file, reader, on_bad_value, SOURCE_READERS).table.schema
    return schema


def snapshot_stats(files: pa.Table, uncompressed: list[tuple[int | None, int]]) -> SnapshotStats:
    """``uncompressed``: (uncompressed bytes from the footer, bytes on disk) of the files inspected."""
    sizes = files[SIZE].to_pylist()
    records = files[N_RECORD]
    known = [(u, s) for u, s in uncompressed if u is not None]
    ratio = sum(u for u, _ in known) / max(1, sum(s for _, s in known)) if known else 1.0
    return SnapshotStats(
        n_file=len(sizes),
        size=sum(sizes),
        n_record=None if records.null_count else pc.sum(records).as_py() or 0,
        min_file_size=min(sizes, default=0),
        median_file_size=int(statistics.median(sizes)) if sizes else 0,
        max_file_size=max(sizes, default=0),
        in_memory_ratio=ratio,
    )


SAMPLE_FILES = 3
SAMPLE_BYTES = 32 * MiB
GUARDED_PARTITIONS = 1_000
"""Above this many estimated partitions, a run whose partitions average under ``--min-partition-size`` is refused."""


def sample_indices(sizes: list[int], n: int = SAMPLE_FILES, most: int = SAMPLE_BYTES) -> list[int]:
    """Up to ``n`` files spread evenly over the snapshot, at most ``most`` bytes together (at least one file)."""
    step = max(1, len(sizes) // n)
    chosen: list[int] = []
    total = 0
    for index in range(0, len(sizes), step)[:n]:
        if chosen and total + sizes[index] > most:
            break
        chosen.append(index)
        total += sizes[index]
    return chosen


def read_sample(file: FileToRead, reader: SnapshotReader | None, on_bad_value: str) -> tuple[pa.Table, int]:
    """A file's rows as the ETL stage reads them, and the bytes on disk they stand for: only the first rows
    (about :data:`SAMPLE_BYTES`) of a bigger Parquet file, so planning holds no more of it than ETL does."""
    size = file.size or 0
    if reader is not None or size <= SAMPLE_BYTES or detect_format(file.uri).kind != PARQUET:
        return read_snapshot_file(file, reader, on_bad_value, SOURCE_READERS).table, size
    footer = read_parquet_footer(file.uri, size)
    pieces: list[pa.Table] = []
    for piece in read_parquet_batches(file.uri, size):
        pieces.append(piece)
        if sum(p.num_rows for p in pieces) * size >= SAMPLE_BYTES * max(1, footer.n_record):
            break
    table = pa.concat_tables(pieces)
    return table, round(size * table.num_rows / max(1, footer.n_record))


def estimate_run(
    config: PipelineConfig, files: pa.Table, reader: SnapshotReader | None, stats: SnapshotStats, groups: list[list[int]]
) -> Estimate:
    """Read, transform, partition and encode a sample of the snapshot as the ETL stage does, and extrapolate."""
    sizes = files[SIZE].to_pylist()
    chosen = sample_indices(sizes)
    counts: dict[str, int] = {}
    partitions_per_file: list[int] = []
    rows = encoded = sample_bytes = 0
    start = time.perf_counter()
    for index in chosen:
        row = files.slice(index, 1).to_pylist()[0]
        extras = {k: v for k, v in row.items() if k not in FILES_SCHEMA.names}  # a source's columns (checksums, ...)
        file = FileToRead(row[URI], row[SIZE], None, extras, row[ETAG])
        table, read_bytes = read_sample(file, reader, config.on_bad_value)
        sample_bytes += read_bytes
        frame = apply_transform(config.transform, pl.from_arrow(for_polars(table, file.uri), rechunk=False))  # type: ignore[arg-type]
        rows += frame.height
        keys = list(config.partition_by)
        if keys:
            seen = frame.group_by(keys).len()
            paths = [partition_path(keys, values[:-1]) for values in seen.iter_rows()]
            for path, n in zip(paths, seen["len"].to_list(), strict=True):
                counts[path] = counts.get(path, 0) + n
            partitions_per_file.append(len(set(paths)))
        else:
            counts[""] = counts.get("", 0) + frame.height
            partitions_per_file.append(1)
        sink = io.BytesIO()
        pq.write_table(frame.drop(keys).to_arrow(), sink, compression=config.compression)
        encoded += sink.tell()
    seconds = max(1e-3, time.perf_counter() - start)
    total_rows = stats.n_record if stats.n_record is not None else round(rows * stats.size / max(1, sample_bytes))
    partitions = estimate.distinct_values(list(counts.values()), rows, total_rows)
    out_bytes = round(encoded * stats.size / max(1, sample_bytes))
    n_staging = estimate.staging_files(
        partitions, len(groups), statistics.mean(partitions_per_file), len(sizes) / max(1, len(groups))
    )
    speed = sample_bytes / seconds
    workers = max(1, min(config.workers, len(groups)))
    return Estimate(
        sample_files=len(chosen),
        sample_bytes=sample_bytes,
        sample_rows=rows,
        partitions_in_sample=len(counts),
        partitions=partitions,
        staging_files=n_staging,
        staging_bytes=out_bytes,
        lake_files=estimate.lake_files(partitions, out_bytes, config.target_file_size),
        lake_bytes=out_bytes,
        bytes_per_second=speed,
        seconds=(stats.size + out_bytes) / speed / workers,
    )


def check_estimate(config: PipelineConfig, found: Estimate) -> None:
    """Refuse, before anything is written, a run that would make far too many (or far too small) partitions."""
    shown = f"(estimated from {found.sample_rows:,} sample rows holding {found.partitions_in_sample:,} partitions)"
    if config.max_partitions and found.partitions > config.max_partitions:
        raise ConfigError(
            f"--partition-by {','.join(config.partition_by)} would make about {found.partitions:,} partitions "
            f"{shown}, more than --max-partitions {config.max_partitions:,}: choose coarser partition keys, or raise "
            "--max-partitions (0: no limit) to run anyway"
        )
    average = found.lake_bytes / max(1, found.partitions)
    if found.partitions > GUARDED_PARTITIONS and average < config.min_partition_size:
        raise ConfigError(
            f"--partition-by {','.join(config.partition_by)} would make about {found.partitions:,} partitions "
            f"averaging {format_size(average)} of Parquet {shown}, under --min-partition-size "
            f"{format_size(config.min_partition_size)}: choose coarser partition keys, or lower --min-partition-size "
            "(1 disables the check) to run anyway"
        )


def plan(
    config: PipelineConfig,
    progress: Progress | None = None,
    manifest: Manifest | None = None,
    dry_run: bool = False,
) -> PlanResult:
    """Inspect the snapshot, estimate what the run will make (refusing far too many partitions), then write one
    manifest per snapshot file group and the plan. ``manifest``: the snapshot manifest, when the caller has read it
    already. ``dry_run``: stop before writing anything, and say what a run would make."""
    progress = progress or NoProgress()
    manifest = manifest or read_manifest(config.manifest_uri)
    uris = storage.normalize_uris(manifest.column(URI))
    if not uris:
        raise SnapshotError(f"manifest {manifest.summary_uri} lists no files: nothing to do")
    refuse_duplicates(uris, manifest.summary_uri)
    reader = manifest.snapshot_details.reader
    is_parquet = [is_parquet_file(uri, bool(reader)) for uri in uris]  # also refuses unknown formats
    all_parquet = all(is_parquet)
    check_roots(config.location, uris)

    sizes, records, etags = manifest.column(SIZE), manifest.column(N_RECORD), manifest.column(ETAG)
    recorded = {}
    if config.inspect_files != "all":
        recorded = recorded_footers(manifest, uris, is_parquet, sizes, records, etags)
    chosen = [i for i in files_to_inspect(len(uris), config.inspect_files, sizes) if i not in recorded]
    progress.start("inspect snapshot files", len(chosen))
    results = map_io(lambda i: _inspect(uris[i], sizes[i], etags[i], is_parquet[i]), chosen, progress)
    inspected = dict(zip(chosen, results, strict=True))
    for index, found in inspected.items():
        listed = records[index]
        if listed is not None and found.n_record is not None and listed != found.n_record:
            raise SnapshotError(
                f"{uris[index]} holds {found.n_record} records but the manifest says {listed}: rebuild the manifest"
            )
        sizes[index] = found.size
        records[index] = found.n_record if found.n_record is not None else listed
        etags[index] = etags[index] or found.etag
    if recorded:
        progress.note(
            f"{len(recorded):,} Parquet footers as the manifest recorded them when it was built, not read again "
            "(the ETL stage checks each file's size and ETag; --inspect-files all reads them)"
        )
    inspected.update(recorded)
    if len(inspected) < len(uris):
        progress.note(
            f"inspected {len(inspected):,} of {len(uris):,} files (--inspect-files {config.inspect_files}); "
            "the others are checked when the ETL stage reads them"
        )
    extra_columns = {  # a source's own columns (checksums) travel on to the ETL stage
        name: manifest.files[name]
        for name in manifest.files.column_names
        if name not in FILES_SCHEMA.names and name not in FOOTER_COLUMNS
    }
    files = files_table(uris, sizes, records, etags, **extra_columns)
    if reader and reader.schema:  # the source knows the schema as read (types restored, items decoded)
        schema: pa.Schema | None = decode_schema(reader.schema)
        assert schema is not None
        output = check_transform(config, schema)
    else:
        parquet = [(uris[i], f.schema) for i, f in sorted(inspected.items()) if f.schema is not None]
        distinct = distinct_schemas(parquet)
        for uri, file_schema in distinct:
            refuse_unsupported(file_schema, uri)
        footers_schema = unify(distinct) if distinct and all_parquet and not reader else None
        output = check_transform(config, footers_schema or sample_schema(files, reader, config.on_bad_value))
        schema = footers_schema if len(parquet) == len(uris) else None  # when every file gave it

    stats = snapshot_stats(files, [(f.uncompressed, sizes[i]) for i, f in inspected.items()])
    progress.note(f"snapshot: {stats}")
    if config.group_size is not None:
        choice = GroupSizeChoice(config.group_size, f"group size {format_size(config.group_size)} (--group-size)")
    else:
        choice = choose_group_size(stats, config.workers, config.memory_per_worker, config.transform_scope)
    progress.note(choice.reason)
    groups = pack_in_order(files[SIZE].to_pylist(), choice.size)
    refuse_groups_past_memory(config, stats, groups, files[SIZE].to_pylist(), uris)
    expected = None
    if dry_run or config.partition_by:  # without partition keys there is nothing to guard against
        progress.start("estimate from a sample", 1)
        try:
            expected = estimate_run(config, files, reader, stats, groups)
        except DbSnapLakeError as exc:  # the ETL stage meets the same file and reports it, group by group
            progress.note(f"no estimate: the sample could not be read and transformed ({exc})")
        progress.advance()
        if expected is not None:
            progress.note(str(expected))
            check_estimate(config, expected)

    fingerprint = plan_fingerprint(config.result_settings(), manifest.digest)
    stamp = version_stamp(snapshot_time(config.location.s3dir_staging, config.snapshot_time))
    root = version_root(config.location.s3dir_datalake, config.publish, stamp)
    refuse_rewriting_published(root)
    location = config.location
    settings = config.to_dict()
    encoded_schema = encode_schema(schema) if schema is not None else None
    names = [location.group_manifest_summary(SNAPSHOT_FILE_GROUPS_FOLDER, n) for n in range(1, len(groups) + 1)]
    result = PlanResult(
        stats=stats,
        group_size=choice,
        group_manifests=tuple(names),
        schema=encoded_schema,
        fingerprint=fingerprint,
        version=stamp,
        version_root=root,
        settings=settings,
        estimate=expected,
        dry_run=dry_run,
        lake_schema=encode_schema(output),
    )
    if dry_run:
        return result
    ledger = Ledger(config.location)
    ledger.reset(root)
    progress.start("write snapshot file group manifests", len(groups))

    def write_group(number: int) -> None:
        header = SnapshotFileGroup(
            group=number,
            n_group=len(groups),
            snapshot_manifest=manifest.summary_uri,
            settings=settings,
            reader=reader,
            schema=encoded_schema,
        )
        data_uri = location.group_manifest_data(SNAPSHOT_FILE_GROUPS_FOLDER, number)
        write_manifest(names[number - 1], files.take(groups[number - 1]), header, data_uri)

    map_io(write_group, range(1, len(groups) + 1), progress)  # S3 PUTs in parallel
    ledger.write_plan(result)  # last: the plan is complete
    return result
