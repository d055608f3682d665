"""A lake whose partition columns have types a Hive path cannot say: ``year`` an int, ``month`` a zero-padded
string (``"01"``, null for some rows), optionally ``bucket`` a tinyint; and a data column with a hostile name.
Catalog and DDL tests check that readers get exactly these types back."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa

from dbsnaplake import storage
from dbsnaplake.api import build_manifest, parse_partition_path

from .snapshots import write_parquet

HOSTILE_COLUMN = "we`ird, col"
DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def typed_transform(buckets: int = 0, before: str | None = None) -> str:
    """Polars SQL over the orders snapshot: ``buckets`` > 0 adds ``bucket`` (``order_id % buckets``, tinyint);
    ``before`` keeps the orders before that time."""
    bucket = f", CAST(order_id % {buckets} AS TINYINT) AS bucket" if buckets else ""
    where = f" WHERE order_time < '{before}'" if before else ""
    return (
        f'SELECT order_id, customer_id, order_time, amount, status, city AS "{HOSTILE_COLUMN}", '
        "CAST(EXTRACT(YEAR FROM order_time) AS INT) AS year, "
        "CASE WHEN order_id % 50 = 0 THEN NULL "
        "ELSE LPAD(CAST(EXTRACT(MONTH FROM order_time) AS VARCHAR), 2, '0') END AS month"
        f"{bucket} FROM snapshot{where}"
    )


def typed_lake_options(
    root: str, manifest: str, snapshot_time: str, transform: str, partition_by: str = "year,month"
) -> list[str]:
    """``dbsnaplake run`` options of a ``--publish latest`` lake ``ROOT/datalake/db/orders/``, in this process."""
    return [
        "--manifest", manifest,
        "--staging", staging_of(root, snapshot_time),
        "--datalake", storage.join(root, "datalake", "db", "orders"),
        "--publish", "latest",
        "--partition-by", partition_by,
        "--transform", transform,
        "--executor", "inline",
    ]  # fmt: skip


def staging_of(root: str, snapshot_time: str) -> str:
    return storage.join(root, "staging", "db", "orders", f"snapshot={snapshot_time}")


def partition_folders(version_root: str) -> dict[tuple[str, ...], str]:
    """The partition folders of a published version, listed: Hive partition values (as catalogs store them) →
    the folder's URI."""
    folders = {storage.parent(i.uri) for i in storage.list_files(version_root) if i.uri.endswith(".parquet")}
    found = {}
    for folder in folders:
        values = parse_partition_path(folder[len(version_root) :]).values()
        found[tuple(DEFAULT_PARTITION if v is None else v for v in values)] = folder
    return found


POINT = pa.struct([("x", pa.float64()), ("odd name", pa.int32())])
EVERY_TYPE = pa.table(
    {
        "i8": pa.array([-128, 0, 127, None], pa.int8()),
        "i16": pa.array([-32768, 0, 32767, None], pa.int16()),
        "i32": pa.array([-(2**31), 0, 2**31 - 1, None], pa.int32()),
        "i64": pa.array([-(2**63), 0, 2**63 - 1, None], pa.int64()),
        "u8": pa.array([0, 1, 255, None], pa.uint8()),
        "u16": pa.array([0, 1, 65535, None], pa.uint16()),
        "u32": pa.array([0, 1, 2**32 - 1, None], pa.uint32()),
        "u64": pa.array([0, 1, 2**64 - 1, None], pa.uint64()),
        "f32": pa.array([1.5, -0.0, None, 3.25], pa.float32()),
        "f64": pa.array([1.5, -2.25, None, 1e300], pa.float64()),
        "dec": pa.array([decimal.Decimal("12.34"), decimal.Decimal("-0.01"), None, decimal.Decimal("9999999999.99")], pa.decimal128(12, 2)),
        "text": pa.array(["a", "", None, "ünï"], pa.string()),
        "large_text": pa.array(["b", None, "c", "d"], pa.large_string()),
        "bin": pa.array([b"\x00\x01", b"", None, b"z"], pa.binary()),
        "fixed": pa.array([b"abcd", b"efgh", None, b"ijkl"], pa.binary(4)),
        "flag": pa.array([True, False, None, True], pa.bool_()),
        "day": pa.array([dt.date(1970, 1, 1), dt.date(2024, 2, 29), None, dt.date(1, 1, 1)], pa.date32()),
        "at": pa.array([dt.datetime(2024, 1, 1, 8, 30), None, dt.datetime(1999, 12, 31, 23, 59, 59, 999999), dt.datetime(2024, 1, 1)], pa.timestamp("us")),
        "at_utc": pa.array([dt.datetime(2024, 1, 1, 8, 30), None, dt.datetime(2000, 1, 1), dt.datetime(2024, 1, 1)], pa.timestamp("us", "UTC")),
        "took": pa.array([dt.timedelta(seconds=1), None, dt.timedelta(0), dt.timedelta(days=1)], pa.duration("us")),
        "tags": pa.array([["a", "b"], [], None, ["c"]], pa.list_(pa.string())),
        "point": pa.array([{"x": 1.0, "odd name": 2}, None, {"x": None, "odd name": 3}, {"x": 0.5, "odd name": None}], POINT),
        "attrs": pa.array([[("k", 1)], [], None, [("a", 2), ("b", None)]], pa.map_(pa.string(), pa.int32())),
        "region": pa.array(["01", "02", None, "01"], pa.string()),
    }
)  # fmt: skip
"""A snapshot with a column of every type the lake holds and Hive tables declare, ``region`` a partition column."""


def every_type_snapshot(root: str) -> str:
    """:data:`EVERY_TYPE` as a one-file snapshot under ``root``, with its manifest; returns the manifest's URI."""
    folder = storage.join(root, "every-type")
    write_parquet(storage.join(folder, "part-0.parquet"), EVERY_TYPE)
    manifest = storage.join(root, "every-type-manifest", "manifest-summary.json")
    build_manifest(folder, manifest)
    return manifest
