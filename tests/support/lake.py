"""Test helpers that read a data lake back the way a user would, and compute what it should hold."""

from __future__ import annotations

import io

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig, parse_partition_path, read_manifest
from dbsnaplake.frames.transform import apply_transform
from dbsnaplake.ledger import latest_root


def lake_root(config: PipelineConfig) -> str:
    """The folder readers read: the data-lake folder, or in ``latest`` mode the version ``_latest.json`` names."""
    if config.publish == "latest":
        root = latest_root(config.location.s3dir_datalake)
        assert root is not None, "nothing published yet"
        return root
    return config.location.s3dir_datalake


def lake_files(config: PipelineConfig) -> list[str]:
    return [i.uri for i in storage.list_files(lake_root(config)) if i.uri.endswith(".parquet")]


def read_file(uri: str) -> pa.Table:
    return pq.read_table(io.BytesIO(storage.read_bytes(uri)))


def read_lake(config: PipelineConfig) -> pl.DataFrame:
    """Every row of the data lake, with partition columns decoded from the paths (as strings)."""
    root = lake_root(config)
    frames = []
    for uri in lake_files(config):
        frame = pl.from_arrow(read_file(uri))
        assert isinstance(frame, pl.DataFrame)
        relative_dir = uri[len(root) :].rsplit("/", 1)[0] if "/" in uri[len(root) :] else ""
        for key, value in parse_partition_path(relative_dir).items():
            frame = frame.with_columns(pl.lit(value, dtype=pl.String).alias(key))
        frames.append(frame)
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def expected_rows(config: PipelineConfig) -> pl.DataFrame:
    """The transformed snapshot, computed directly from the source files (no pipeline code but the transform)."""
    manifest = read_manifest(config.manifest_uri)
    tables = [read_file(u) for u in manifest.column("uri")]
    frame = pl.from_arrow(pa.concat_tables(tables, promote_options="permissive"))
    assert isinstance(frame, pl.DataFrame)
    return apply_transform(config.transform, frame)


def same_rows(actual: pl.DataFrame, expected: pl.DataFrame, key: str) -> None:
    """Assert equal multisets of rows (columns compared by name; partition columns as strings)."""
    assert actual.height == expected.height, f"{actual.height} rows in the lake, {expected.height} expected"
    assert sorted(actual.columns) == sorted(expected.columns)
    columns = sorted(expected.columns)
    expected = expected.select(columns).with_columns(
        [pl.col(c).cast(actual.schema[c]) for c in columns if actual.schema[c] != expected.schema[c]]
    )
    actual_sorted = actual.select(columns).sort(key)
    expected_sorted = expected.sort(key)
    assert actual_sorted.equals(expected_sorted, null_equal=True)
