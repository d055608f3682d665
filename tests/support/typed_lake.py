"""A lake whose partition columns have types a Hive path cannot say: ``year`` an int, ``month`` a zero-padded
string (``"01"``, null for some rows), optionally ``bucket`` a tinyint; and a data column with a hostile name.
Catalog and DDL tests check that readers get exactly these types back."""

from __future__ import annotations

from dbsnaplake import storage
from dbsnaplake.api import parse_partition_path

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
