"""Fixtures: storage roots (local disk, and a real S3 server on 127.0.0.1), small snapshots, configs.

The S3 server is moto's standalone server started as a subprocess; the code under test reaches it through
``AWS_ENDPOINT_URL`` exactly as it reaches a user's S3. Nothing is patched in-process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig, S3Location, SortKey, build_manifest
from dbsnaplake.demo import orders_table
from dbsnaplake.testing import local_s3_server

S3_BUCKET = "dbsnaplake-test"
YEAR_MONTH = (
    "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year, "
    "LPAD(CAST(EXTRACT(MONTH FROM order_time) AS VARCHAR), 2, '0') AS month FROM snapshot"
)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 HTTP server (moto) on a free port of 127.0.0.1; yields its endpoint URL."""
    with local_s3_server(S3_BUCKET) as server:
        yield server.endpoint


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty root folder: on local disk, or a fresh prefix on the S3 server."""
    if request.param == "local":
        return str(tmp_path)
    request.getfixturevalue("s3_server")
    return f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def local_root(tmp_path: Path) -> str:
    return str(tmp_path)


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
