"""A sample snapshot to try the pipeline on: an orders table exported as ~200 Parquet files (~150 MB)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.config.settings import PipelineConfig
from dbsnaplake.layout import S3Location
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import SortKey
from dbsnaplake.sources.folder import build_manifest

DEMO_TRANSFORM = (
    "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year, "
    "LPAD(CAST(EXTRACT(MONTH FROM order_time) AS VARCHAR), 2, '0') AS month FROM snapshot"
)
STATUSES = np.array(["created", "paid", "shipped", "delivered", "cancelled", "refunded"])
CITIES = np.array(
    ["Seattle", "Austin", "Boston", "Denver", "Chicago", "Miami", "Portland", "Atlanta", "Phoenix", "Dallas"]
)
STREETS = np.array(["Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Lake Blvd", "Hill Ct"])
START = dt.datetime(2021, 1, 1)
END = dt.datetime(2024, 1, 1)


@dataclass(frozen=True)
class DemoPaths:
    root: str

    @property
    def snapshot(self) -> str:
        return storage.join(self.root, "snapshot", "orders")

    @property
    def location(self) -> S3Location:
        return S3Location(
            s3uri_staging=storage.join(self.root, "staging", "mydatabase", "orders", "snapshot=2024-01-01T00:00:00Z"),
            s3uri_datalake=storage.join(self.root, "datalake", "mydatabase", "orders"),
        )

    @property
    def manifest(self) -> str:
        return self.location.s3path_snapshot_manifest_summary


def orders_table(first_order_id: int, n_rows: int, rng: np.random.Generator, total_rows: int | None = None) -> pa.Table:
    """``n_rows`` orders with ids from ``first_order_id``; order times grow with ids, busier in later months.

    ``total_rows`` is the size of the whole snapshot, so its time span is always 2021-01 to 2023-12."""
    ids = np.arange(first_order_id, first_order_id + n_rows, dtype=np.int64)
    span = (END - START).total_seconds()
    # Order volume grows over time (later months hold more orders): time ~ sqrt of position.
    position = (ids.astype(np.float64) + rng.random(n_rows)) / (total_rows or DEMO_ROWS)
    seconds = np.sqrt(np.clip(position, 0, 0.999999)) * span
    times = np.datetime64(START, "us") + (seconds * 1e6).astype("timedelta64[us]")
    street = rng.integers(1, 9999, n_rows).astype(str)
    address = np.char.add(np.char.add(street, " "), STREETS[rng.integers(0, len(STREETS), n_rows)])
    note = pa.array(
        np.char.add("gift message #", rng.integers(0, 10**6, n_rows).astype(str)), mask=rng.random(n_rows) < 0.8
    )
    coupon = pa.array(np.char.add("SAVE", rng.integers(5, 50, n_rows).astype(str)), mask=rng.random(n_rows) < 0.9)
    discount = np.where(rng.random(n_rows) < 0.7, np.nan, np.round(rng.random(n_rows) * 20, 2))
    return pa.table(
        {
            "order_id": ids,
            "customer_id": rng.integers(1, 250_000, n_rows),
            "order_time": pa.array(times, pa.timestamp("us")),
            "amount": np.round(rng.gamma(2.0, 40.0, n_rows), 2),
            "status": STATUSES[rng.integers(0, len(STATUSES), n_rows)],
            "city": CITIES[rng.integers(0, len(CITIES), n_rows)],
            "shipping_address": address,
            "note": note.cast(pa.string()),
            "coupon_code": coupon.cast(pa.string()),
            "discount": pa.array(discount, pa.float64(), from_pandas=True),
        }
    )


DEMO_FILES = 200
DEMO_ROWS = 4_000_000


def generate_snapshot(
    folder: str, n_files: int = DEMO_FILES, n_rows: int = DEMO_ROWS, seed: int = 42, progress: Progress | None = None
) -> None:
    """Write ``n_files`` Parquet files of orders (together ``n_rows`` rows) into ``folder``."""
    progress = progress or NoProgress()
    rng = np.random.default_rng(seed)
    rows_per_file = -(-n_rows // n_files)
    progress.start("generate sample snapshot", n_files)
    for index in range(n_files):
        first = index * rows_per_file
        count = max(0, min(rows_per_file, n_rows - first))
        uri = storage.join(folder, f"part-{index:05d}.snappy.parquet")
        with storage.atomic_output(uri) as local:
            pq.write_table(orders_table(first, count, rng, n_rows), local, compression="snappy")
        progress.advance()


def prepare_demo(root: str, workers: int, progress: Progress | None = None) -> PipelineConfig:
    """Generate the sample snapshot and its manifest under ``root`` (once), and return the demo's settings."""
    paths = DemoPaths(storage.normalize_uri(root))
    if not storage.exists(paths.manifest):
        generate_snapshot(paths.snapshot, progress=progress)
        build_manifest(paths.snapshot, paths.manifest, progress)
    return PipelineConfig(
        location=paths.location,
        snapshot_manifest=paths.manifest,
        partition_by=("year", "month"),
        sort_by=(SortKey("order_time"),),
        transform=DEMO_TRANSFORM,
        workers=workers,
    )
