"""Small orders snapshots and the pipeline configs the tests run on them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig, S3Location, SortKey, build_manifest
from dbsnaplake.demo import orders_table

S3_BUCKET = "dbsnaplake-test"
YEAR_MONTH = (
    "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year, "
    "LPAD(CAST(EXTRACT(MONTH FROM order_time) AS VARCHAR), 2, '0') AS month FROM snapshot"
)


def write_parquet(uri: str, table: pa.Table, **kwargs: object) -> None:
    with storage.atomic_output(uri) as local:
        pq.write_table(table, local, **kwargs)


def make_orders_snapshot(root: str, n_files: int = 12, rows_per_file: int = 2_000, seed: int = 7) -> str:
    """Write a small orders snapshot with its manifest under ``root``; return the manifest URI."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder = storage.join(root, "snapshot")
    for index in range(n_files):
        table = orders_table(index * rows_per_file, rows_per_file, rng, n_files * rows_per_file)
        write_parquet(storage.join(folder, f"part-{index:04d}.parquet"), table)
    manifest = storage.join(root, "manifests", "manifest-summary.json")
    build_manifest(folder, manifest)
    return manifest


def orders_config(root: str, manifest: str, **overrides: object) -> PipelineConfig:
    settings: dict[str, object] = {
        "location": S3Location(
            s3uri_staging=storage.join(root, "staging", "db", "orders", "snapshot=2024-01-01T00:00:00Z"),
            s3uri_datalake=storage.join(root, "datalake", "db", "orders"),
        ),
        "snapshot_manifest": manifest,
        "partition_by": ("year", "month"),
        "sort_by": (SortKey("order_time"),),
        "transform": YEAR_MONTH,
        "workers": 2,
    }
    settings.update(overrides)
    return PipelineConfig(**settings)  # type: ignore[arg-type]
