"""Stage 2, ETL to staging: one worker reads one snapshot file group, transforms it, partitions it, sorts each
partition and writes one staging Parquet file per partition, then the group's staging manifest.

Output names derive from the group number alone (``datalake/<partition>/group-000007.parquet``), so a rerun of
a group overwrites its own files instead of adding new ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from . import storage
from .config import PipelineConfig
from .errors import SnapshotError, TransformError
from .location import STAGING_FILE_GROUPS_FOLDER
from .manifest import N_RECORD, SIZE, URI, files_table, read_manifest, write_manifest
from .partitioning import partition_path
from .readers import read_table
from .schema import conform, decode_schema, encode_schema, unify
from .sorting import sort_table
from .transform import apply_transform

PARTITION = "partition"
STAGING_ROW_GROUP_ROWS = 65_536  # small row groups keep the compaction merge's memory low


@dataclass(frozen=True)
class EtlGroupResult:
    group: int
    n_file_in: int
    size_in: int
    n_record_in: int
    n_record_out: int
    n_partition: int
    size_out: int
    staging_manifest: str


def staging_file_name(group: int) -> str:
    return f"group-{group:06d}.parquet"


def read_group(uris: list[str], sizes: list[int], n_records: list[int | None], schema: pa.Schema | None) -> pa.Table:
    """Read a group's files into one table with one schema; each file's record count is checked."""
    tables = []
    for uri, size, expected in zip(uris, sizes, n_records, strict=True):
        table = read_table(uri, size)
        if expected is not None and table.num_rows != expected:
            raise SnapshotError(f"{uri} holds {table.num_rows} records but the manifest says {expected}")
        tables.append((uri, table))
    if schema is None:
        schema = unify([(uri, t.schema) for uri, t in tables])
    return pa.concat_tables([conform(t, schema, uri) for uri, t in tables]) if tables else schema.empty_table()


def split_partitions(frame: pl.DataFrame, keys: tuple[str, ...]) -> list[tuple[str, pl.DataFrame]]:
    """``[(hive path, rows without the key columns)]``, sorted by path; one entry ``("", frame)`` without keys."""
    for key in keys:
        if key not in frame.columns:
            raise TransformError(
                f"--partition-by column {key!r} is not produced by the transform; its columns are: "
                f"{', '.join(frame.columns)}"
            )
    if not keys:
        return [("", frame)] if frame.height else []
    parts = frame.partition_by(list(keys), as_dict=True, include_key=False, maintain_order=True)
    by_path: dict[str, list[pl.DataFrame]] = {}
    for values, part in parts.items():
        # "" and null (or NaN and null) are two groups but one Hive folder: write them as one partition
        by_path.setdefault(partition_path(keys, values), []).append(part)
    return [(path, pl.concat(by_path[path])) for path in sorted(by_path)]


def run_etl_group(config: PipelineConfig, group_manifest: str) -> EtlGroupResult:
    """Process one snapshot file group end to end. Safe to rerun: it rewrites the same files."""
    manifest = read_manifest(group_manifest)
    group = int(manifest.extra["group"])
    schema_text = manifest.extra.get("schema")
    table = read_group(
        manifest.column(URI),
        manifest.column(SIZE),
        manifest.column(N_RECORD),
        decode_schema(schema_text) if schema_text else None,
    )
    n_record_in = table.num_rows
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    del table
    out = apply_transform(config.transform, frame)
    del frame
    for key in config.sort_by:
        if key.column not in out.columns:
            raise TransformError(
                f"--sort-by column {key.column!r} is not produced by the transform; its columns are: "
                f"{', '.join(out.columns)}"
            )
    partitions = split_partitions(out, config.partition_by)
    out_schema = out.drop(list(config.partition_by)).to_arrow(compat_level=pl.CompatLevel.oldest()).schema
    n_record_out = out.height
    del out

    uris, sizes, counts, paths = [], [], [], []
    for path, part in partitions:
        arrow = sort_table(part.to_arrow(compat_level=pl.CompatLevel.oldest()), config.sort_by)
        uri = storage.join(config.location.staging_partition_dir(path), staging_file_name(group))
        with storage.atomic_output(uri) as local:
            pq.write_table(arrow, local, compression=config.compression, row_group_size=STAGING_ROW_GROUP_ROWS)
            sizes.append(local.stat().st_size)
        uris.append(uri)
        counts.append(arrow.num_rows)
        paths.append(path)

    summary = config.location.group_manifest_summary(STAGING_FILE_GROUPS_FOLDER, group)
    write_manifest(
        summary,
        files_table(uris, sizes, counts, **{PARTITION: pa.array(paths, pa.string())}),
        extra={
            "stage": STAGING_FILE_GROUPS_FOLDER,
            "group": group,
            "n_record_in": n_record_in,
            "n_record_out": n_record_out,
            "partition_by": list(config.partition_by),
            "schema": encode_schema(out_schema),
        },
        data_uri=config.location.group_manifest_data(STAGING_FILE_GROUPS_FOLDER, group),
    )
    return EtlGroupResult(
        group=group,
        n_file_in=manifest.n_file,
        size_in=manifest.size,
        n_record_in=n_record_in,
        n_record_out=n_record_out,
        n_partition=len(partitions),
        size_out=sum(sizes),
        staging_manifest=summary,
    )
