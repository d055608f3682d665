"""Stage 1, plan: inspect the snapshot, choose the group size, split files into snapshot file groups.

Everything is checked before anything is written: each file exists and has the size the manifest says, each
Parquet footer is readable, the files' schemas unify, and the transform (run on an empty frame) produces the
partition and sort columns. Only then are the group manifests written.

A manifest of more than 10,000 files is checked on an even sample of 1,000 (``--inspect-files auto``): one
request per file would dominate planning a million-file snapshot. Files not inspected are checked when the ETL
stage reads them (existence, record count, schema), which fails naming the file just the same.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from dbsnaplake import storage
from dbsnaplake.binpack import pack_in_order
from dbsnaplake.config.settings import PipelineConfig
from dbsnaplake.errors import ConfigError, SnapshotError
from dbsnaplake.frames.readers import PARQUET, FileToRead, detect_format, read_parquet_footer
from dbsnaplake.frames.schema import decode_schema, encode_schema, unify
from dbsnaplake.frames.transform import output_schema
from dbsnaplake.layout import SNAPSHOT_FILE_GROUPS_FOLDER, S3Location, snapshot_time, version_root, version_stamp
from dbsnaplake.ledger import Ledger, plan_fingerprint, refuse_rewriting_published
from dbsnaplake.manifest import (
    ETAG,
    FILES_SCHEMA,
    N_RECORD,
    SIZE,
    URI,
    Manifest,
    files_table,
    read_manifest,
    write_manifest,
)
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import GroupSizeChoice, PlanResult, SnapshotFileGroup, SnapshotStats
from dbsnaplake.storage.parallel import map_io
from dbsnaplake.units import format_size

MiB = 1024**2
MIN_GROUP_SIZE = 16 * MiB
INSPECT_ALL_UP_TO = 10_000
INSPECT_SAMPLE = 1_000
GROUPS_PER_WORKER = 4
WORKER_BASE_MEMORY = 300 * MiB  # the interpreter with pyarrow and polars loaded, and allocator slack
RUN_MEMORY_PER_BYTE = 2  # ETL keeps a group's sorted runs compressed, then merges them: ~2 bytes per byte on disk
FILE_WORKING_COPIES = 4  # one file at a time is read, transformed, split and sorted


def choose_group_size(stats: SnapshotStats, workers: int, memory_per_worker: int) -> GroupSizeChoice:
    """The most snapshot bytes one ETL group may hold: small enough to fit a worker's memory, and small
    enough that every worker gets several groups (so work balances), but not uselessly small.

    An ETL worker needs about ``2 x group size + 300 MiB`` plus the working copies of its largest file.
    """
    file_working = int(stats.max_file_size * max(stats.in_memory_ratio, 1.0) * FILE_WORKING_COPIES)
    free = max(0, memory_per_worker - WORKER_BASE_MEMORY - file_working)
    by_memory = max(MiB, free // RUN_MEMORY_PER_BYTE)
    by_balance = -(-stats.size // (workers * GROUPS_PER_WORKER))
    size = max(min(by_memory, by_balance), min(MIN_GROUP_SIZE, by_memory))
    reason = (
        f"group size {format_size(size)} = min(memory: ({format_size(memory_per_worker)} per worker - "
        f"{format_size(WORKER_BASE_MEMORY)} - {format_size(file_working)} for the largest file) / "
        f"{RUN_MEMORY_PER_BYTE} = {format_size(by_memory)}, balance: {format_size(stats.size)} / "
        f"({workers} workers x {GROUPS_PER_WORKER}) = {format_size(by_balance)}), "
        f"at least {format_size(min(MIN_GROUP_SIZE, by_memory))}"
    )
    return GroupSizeChoice(size, reason)


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


def check_roots(location: S3Location, file_uris: list[str]) -> None:
    """Refuse roots that would write into the snapshot, or a snapshot inside the roots."""
    for name, root in (("--staging", location.s3dir_staging), ("--datalake", location.s3dir_datalake)):
        root_dir = storage.as_dir(root)
        for uri in file_uris:  # normalized already: a plain prefix test, fast for a million files
            if (uri + "/").startswith(root_dir):
                raise ConfigError(f"{name} {root} contains snapshot file {uri}: choose a folder outside the snapshot")
    snapshot_dir = storage.common_folder(file_uris)
    if snapshot_dir is None:
        return
    for name, root in (("--staging", location.s3dir_staging), ("--datalake", location.s3dir_datalake)):
        if storage.is_within(root, snapshot_dir):
            raise ConfigError(
                f"{name} {root} is inside the snapshot folder {snapshot_dir}: choose a folder outside the snapshot"
            )


def check_transform(config: PipelineConfig, schema: pa.Schema) -> pa.Schema:
    """Run the transform on an empty frame; the partition and sort columns must come out of it."""
    out = output_schema(config.transform, schema)
    config.require_output_columns(out.names)
    return out


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


def plan(config: PipelineConfig, progress: Progress | None = None, manifest: Manifest | None = None) -> PlanResult:
    """Inspect the snapshot, then write one manifest per snapshot file group. ``manifest``: the snapshot
    manifest, when the caller has read it already."""
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
    chosen = files_to_inspect(len(uris), config.inspect_files, sizes)
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
    if len(chosen) < len(uris):
        progress.note(
            f"inspected {len(chosen):,} of {len(uris):,} files (--inspect-files {config.inspect_files}); "
            "the others are checked when the ETL stage reads them"
        )
    extra_columns = {
        name: manifest.files[name] for name in manifest.files.column_names if name not in FILES_SCHEMA.names
    }
    files = files_table(uris, sizes, records, etags, **extra_columns)  # a source's own columns (checksums) travel on
    if reader and reader.schema:  # the source knows the schema as read (types restored, items decoded)
        schema: pa.Schema | None = decode_schema(reader.schema)
        assert schema is not None
        check_transform(config, schema)
    else:
        parquet = [(uris[i], f.schema) for i, f in inspected.items() if f.schema is not None]
        sample_schema = unify(parquet) if parquet else None
        if sample_schema is not None and all_parquet and not reader:
            check_transform(config, sample_schema)
        schema = sample_schema if len(parquet) == len(uris) and not reader else None  # when every file gave it

    stats = snapshot_stats(files, [(f.uncompressed, sizes[i]) for i, f in inspected.items()])
    progress.note(f"snapshot: {stats}")
    if config.group_size is not None:
        choice = GroupSizeChoice(config.group_size, f"group size {format_size(config.group_size)} (--group-size)")
    else:
        choice = choose_group_size(stats, config.workers, config.memory_per_worker)
    progress.note(choice.reason)
    groups = pack_in_order(files[SIZE].to_pylist(), choice.size)

    fingerprint = plan_fingerprint(config.result_settings(), manifest.digest)
    stamp = version_stamp(snapshot_time(config.location.s3dir_staging, config.snapshot_time))
    root = version_root(config.location.s3dir_datalake, config.publish, stamp)
    refuse_rewriting_published(root)
    ledger = Ledger(config.location)
    ledger.reset(root)
    location = config.location
    settings = config.to_dict()
    progress.start("write snapshot file group manifests", len(groups))

    def write_group(numbered: tuple[int, list[int]]) -> str:
        number, indices = numbered
        summary_uri = location.group_manifest_summary(SNAPSHOT_FILE_GROUPS_FOLDER, number)
        header = SnapshotFileGroup(
            group=number,
            n_group=len(groups),
            snapshot_manifest=manifest.summary_uri,
            settings=settings,
            reader=reader,
            schema=encode_schema(schema) if schema is not None else None,
        )
        data_uri = location.group_manifest_data(SNAPSHOT_FILE_GROUPS_FOLDER, number)
        write_manifest(summary_uri, files.take(indices), header, data_uri)
        return summary_uri

    summaries = map_io(write_group, list(enumerate(groups, start=1)), progress)  # S3 PUTs in parallel
    result = PlanResult(
        stats=stats,
        group_size=choice,
        group_manifests=tuple(summaries),
        schema=encode_schema(schema) if schema is not None else None,
        fingerprint=fingerprint,
        version=stamp,
        version_root=root,
        settings=settings,
    )
    ledger.write_plan(result)  # last: the plan is complete
    return result
