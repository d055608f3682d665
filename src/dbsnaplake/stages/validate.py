"""Stage 5, validate: compare the data lake with the snapshot, in total and per partition, down to the rows.

Three layers are compared: the snapshot manifest's records against what ETL read; what ETL wrote (per
partition: records, and a fingerprint of the rows, see :mod:`dbsnaplake.frames.fingerprint`) against what the
data lake's files hold, read back in full, row group by row group. Any mismatch, an unreadable data-lake file,
or a data-lake file no partition accounts for, is a problem: the result is written to
``manifests/validate-datalake-result.json`` and :class:`ValidationError` is raised.
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.config.settings import PipelineConfig, planned_config
from dbsnaplake.errors import SnapshotError, ValidationError
from dbsnaplake.frames import fingerprint
from dbsnaplake.frames.parquet_join import Footer, RowGroupBytes, read_footer, row_group_file
from dbsnaplake.frames.readers import dictionary_encoded_columns, read_row_groups
from dbsnaplake.frames.types import converted_schema
from dbsnaplake.ledger import Ledger
from dbsnaplake.manifest import N_RECORD, PARTITION, ROWS_FINGERPRINT, SIZE, Manifest, read_manifest
from dbsnaplake.original_format import validation_dict
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import PartitionCheck, StagingFileGroup, Totals, ValidateResult
from dbsnaplake.storage.parallel import map_io

READ_BACK_THREADS = 4
"""Data-lake files read back at once: each holds one row group in memory while it is hashed (on S3, and
:data:`storage.STREAM_READ_AHEAD` bytes or so of its one streamed GET)."""
READ_BACK_TASK = "read the data lake back"


@dataclass(frozen=True)
class LakeFile:
    """A data-lake file to read back."""

    uri: str
    size: int


@dataclass(frozen=True)
class ReadBack:
    """What one data-lake file holds, read back in full."""

    n_record: int = 0
    rows_fingerprint: int = 0
    error: str | None = None


ReadBackFiles = Callable[[Sequence[LakeFile], Progress], list[ReadBack]]
"""How the lake's files are read back: :func:`read_back_here`, or spread over the run's workers."""


def read_back(uri: str, size: int) -> ReadBack:
    """Count and fingerprint a data-lake file's rows, a row group at a time; an unreadable file gives its error.
    Row groups of the types Polars hashes alike (:func:`fingerprint.hashes_in_polars`) are decoded by Polars, each
    as a file of its own (:func:`row_group_file`: one in memory at a time), the others by pyarrow; a file that
    Polars refuses is read again by pyarrow, whose error is the file's."""
    try:
        with storage.open_input_file(uri, size, storage.STREAM_READ_AHEAD, streamed=True) as f:  # read in order
            footer = read_footer(uri, size, f)
            row_groups = footer.row_groups
            schema = footer.arrow_schema()
            if row_groups is not None and fingerprint.hashes_in_polars(schema):
                with contextlib.suppress(pl.exceptions.PolarsError):
                    back = _read_back_in_polars(f, footer, row_groups, converted_schema(schema))
                    if back is not None:
                        return back
            return _read_back_in_arrow(f, uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, SnapshotError) as exc:
        reason = " ".join(str(exc).split())
        return ReadBack(error=f"data lake file {uri} cannot be read (corrupt?): {reason} — rerun with --fresh")


def _read_back_in_polars(
    f: BinaryIO, footer: Footer, row_groups: list[RowGroupBytes], expected: pl.Schema
) -> ReadBack | None:
    """``None`` when Polars decodes a row group to other types than pyarrow's (a file for pyarrow to read)."""
    n_record = rows_fingerprint = 0
    for group in row_groups:
        f.seek(group.start)
        data = f.read(group.length)
        rows = pl.read_parquet(io.BytesIO(row_group_file(footer, group, data)))
        if rows.schema != expected:
            return None
        n_record += rows.height
        rows_fingerprint = fingerprint.combine([rows_fingerprint, fingerprint.frame_fingerprint(rows)])
    return ReadBack(n_record, rows_fingerprint)


def _read_back_in_arrow(f: BinaryIO, uri: str) -> ReadBack:
    n_record = rows_fingerprint = 0
    f.seek(0)
    metadata = pq.read_metadata(f)
    parquet = pq.ParquetFile(
        f,
        metadata=metadata,
        pre_buffer=storage.is_s3(uri),
        read_dictionary=dictionary_encoded_columns(metadata),  # the same hashes, decoded and hashed faster
    )
    for rows in read_row_groups(parquet):
        n_record += rows.num_rows
        rows_fingerprint = fingerprint.combine([rows_fingerprint, fingerprint.fingerprint(rows)])
    return ReadBack(n_record, rows_fingerprint)


def read_back_files(files: Sequence[LakeFile], progress: Progress | None = None) -> list[ReadBack]:
    """:func:`read_back` for each of ``files``, several at once (one task of the read-back, when run in a worker)."""
    return map_io(lambda file: read_back(file.uri, file.size), files, progress, threads=READ_BACK_THREADS)


def read_back_here(files: Sequence[LakeFile], progress: Progress) -> list[ReadBack]:
    """The read-back in this process (the default: ``dbsnaplake validate``, an inline run)."""
    progress.start(READ_BACK_TASK, len(files))
    return read_back_files(files, progress)


def fingerprint_problems(staging_manifests: list[tuple[Manifest, StagingFileGroup]]) -> list[str]:
    """Staging manifests whose row fingerprints cannot be compared with the ones computed here."""
    problems = []
    for manifest, header in staging_manifests:
        algorithm = header.rows_fingerprint_algorithm
        if algorithm is None or ROWS_FINGERPRINT not in manifest.files.column_names:
            problems.append(
                f"staging group {header.group} ({manifest.summary_uri}) has no row fingerprints (written by an "
                "earlier dbsnaplake): rerun with --fresh"
            )
        elif algorithm != fingerprint.ALGORITHM:
            problems.append(
                f"staging group {header.group}'s row fingerprints were made by {algorithm}, but this dbsnaplake "
                f"computes {fingerprint.ALGORITHM}: validate with the dbsnaplake and Polars versions that ran ETL, "
                "or rerun with --fresh"
            )
    return problems


def share_near_target(sizes_by_partition: list[list[int]], target: int) -> float:
    """Share of files within ±10 % of ``target``, leaving out each partition's smallest file (its remainder)."""
    judged = [size for sizes in sizes_by_partition for size in sorted(sizes)[1:]]
    if not judged:
        return 1.0
    return sum(1 for size in judged if 0.9 * target <= size <= 1.1 * target) / len(judged)


def _partition_of(uri: str, root: str) -> str:
    relative = uri[len(root) :]
    return relative.rsplit("/", 1)[0] if "/" in relative else ""


def validate(
    config: PipelineConfig, progress: Progress | None = None, read_back_files: ReadBackFiles | None = None
) -> ValidateResult:
    """Compare the data lake with the snapshot; write the result, and raise :class:`ValidationError` on a mismatch.
    ``config`` must agree with the plan's settings. ``read_back_files`` reads the lake's files back (default: in
    this process, :func:`read_back_here`; a run spreads it over its workers)."""
    progress = progress or NoProgress()
    location = config.location
    ledger = Ledger(location)
    plan = ledger.require_plan()
    config = planned_config(plan.settings, config, location.s3dir_staging)
    snapshot = read_manifest(config.manifest_uri)
    staging_manifests = ledger.staging_manifests(progress)
    headers = [h for _, h in staging_manifests]

    staging_by_partition: dict[str, list[tuple[int, int]]] = defaultdict(list)
    staging_fingerprints: dict[str, int] = defaultdict(int)
    for m, _ in staging_manifests:
        for partition, size, n in zip(m.column(PARTITION), m.column(SIZE), m.column(N_RECORD), strict=True):
            staging_by_partition[partition].append((size, n))
        if ROWS_FINGERPRINT in m.files.column_names:
            for partition, rows in zip(m.column(PARTITION), m.column(ROWS_FINGERPRINT), strict=True):
                staging_fingerprints[partition] = fingerprint.combine([staging_fingerprints[partition], rows or 0])

    root = plan.version_root
    lake_files = [LakeFile(i.uri, i.size) for i in storage.list_files(root) if i.uri.endswith(".parquet")]
    read = (read_back_files or read_back_here)(lake_files, progress)
    lake_by_partition: dict[str, list[tuple[int, int]]] = defaultdict(list)
    lake_fingerprints: dict[str, int] = defaultdict(int)
    unreadable = []
    for info, back in zip(lake_files, read, strict=True):
        partition = _partition_of(info.uri, root)
        lake_by_partition[partition].append((info.size, back.n_record))
        lake_fingerprints[partition] = fingerprint.combine([lake_fingerprints[partition], back.rows_fingerprint])
        if back.error:
            unreadable.append(back.error)

    def totals(entries: list[tuple[int, int]]) -> Totals:
        return Totals(len(entries), sum(s for s, _ in entries), sum(n for _, n in entries))

    partitions = tuple(
        PartitionCheck(
            p,
            totals(staging_by_partition.get(p, [])),
            totals(lake_by_partition.get(p, [])),
            fingerprint.shown(staging_fingerprints[p]),
            fingerprint.shown(lake_fingerprints[p]),
        )
        for p in sorted(set(staging_by_partition) | set(lake_by_partition))
    )
    etl_in = sum(h.n_record_in for h in headers)
    etl_out = sum(h.n_record_out for h in headers)
    bad_values = sum(h.n_bad_value for h in headers)
    staging_total = totals([e for entries in staging_by_partition.values() for e in entries])
    lake_total = totals([e for entries in lake_by_partition.values() for e in entries])

    incomparable = fingerprint_problems(staging_manifests)
    problems = incomparable + unreadable
    if snapshot.n_record is not None and snapshot.n_record != etl_in:
        problems.append(f"the snapshot manifest lists {snapshot.n_record:,} records but ETL read {etl_in:,}")
    if etl_out != staging_total.records:
        problems.append(f"the transform produced {etl_out:,} records but staging holds {staging_total.records:,}")
    for check in partitions:
        name = check.partition or "(unpartitioned)"
        if not staging_by_partition and check.partition == "" and check.datalake.records == 0:
            continue  # a table of 0 rows: its one empty file, written so that every reader opens the lake
        if check.partition not in staging_by_partition:
            problems.append(
                f"data lake partition {name} holds {check.datalake.files} files no staging file accounts for "
                f"(left by an earlier run?): remove them from {storage.join(root, check.partition)}/"
            )
        elif check.staging.records != check.datalake.records:
            problems.append(
                f"partition {name}: staging holds {check.staging.records:,} records, "
                f"the data lake {check.datalake.records:,} — rerun with --fresh"
            )
        elif check.staging_fingerprint != check.datalake_fingerprint and not incomparable:
            problems.append(
                f"partition {name}: the data lake's rows differ from the rows ETL wrote (same {check.staging.records:,} "
                f"records, row fingerprint {check.datalake_fingerprint}, expected {check.staging_fingerprint}): "
                "a staging or data-lake file changed after it was written — rerun with --fresh"
            )

    result = ValidateResult(
        snapshot=Totals(snapshot.n_file, snapshot.size, snapshot.n_record or 0),
        snapshot_records_known=snapshot.n_record is not None,
        etl_records_in=etl_in,
        etl_records_out=etl_out,
        staging=staging_total,
        datalake=lake_total,
        partitions=partitions,
        target_file_size=config.target_file_size,
        files_judged=sum(max(0, len(entries) - 1) for entries in lake_by_partition.values()),
        files_near_target=share_near_target(
            [[size for size, _ in entries] for entries in lake_by_partition.values()], config.target_file_size
        ),
        bad_values=bad_values,
        rows_fingerprint_algorithm=fingerprint.ALGORITHM,
        problems=tuple(problems),
    )
    ledger.write_validation(validation_dict(result))
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ValidationError(
            f"the data lake does not match the snapshot: {shown} (details: {location.s3path_validate_datalake_result})"
        )
    return result
