"""Small RDS / Aurora snapshot exports, in the layout AWS writes them, with the rows they should restore to.

``write_rds_export(root)`` writes, below ``<root>/exports/<export id>/``::

    export_info_<id>.json
    export_tables_info_<id>_from_1_to_2.json        mydb.public.orders + a warning entry
    export_tables_info_<id>_from_3_to_3.json        mydb.customers
    mydb/public.orders/1/part-00000-<uuid>-c000.gz.parquet, part-00001-<uuid>-c000.gz.parquet, _SUCCESS
    mydb/public.orders/2/part-00000-<uuid>.gz.parquet (the older name style), _SUCCESS
    mydb/public.orders/4/part-00000-<uuid>-c000.gz.parquet, _SUCCESS (no batch 3: gaps are normal)
    mydb/mydb.customers/1/part-00000-<uuid>-c000.gz.parquet

The PostgreSQL table's dates, timestamps, timestamptz and numerics are strings, printed the way PostgreSQL
prints them; the MySQL table's columns have their own Parquet types, as MySQL exports do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa

from dbsnaplake import storage

from .snapshots import write_parquet

EXPORT_ID = "mydb-export-2024-03-01"
SNAPSHOT_TIME = "2024-03-01T04:05:06Z"
ORDERS = "mydb.public.orders"
CUSTOMERS = "mydb.customers"
ROWS_PER_FILE = 25
ORDERS_FILES = (  # (batch folder, file name): both name styles, a gap in the batch numbers
    ("1", "part-00000-{uuid}-c000.gz.parquet"),
    ("1", "part-00001-{uuid}-c000.gz.parquet"),
    ("2", "part-00000-{uuid}.gz.parquet"),
    ("4", "part-00000-{uuid}-c000.gz.parquet"),
)

ORDERS_SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("customer", pa.string()),
        ("created_at", pa.date32()),
        ("updated_at", pa.timestamp("us")),
        ("paid_at", pa.timestamp("us", tz="UTC")),
        ("amount", pa.decimal128(12, 2)),
        ("ratio", pa.string()),  # numeric without precision: stays a string
        ("payload", pa.string()),  # jsonb
        ("ref", pa.string()),  # uuid
    ]
)
CUSTOMERS_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("name", pa.string()),
        ("signed_up", pa.timestamp("us")),
        ("birthday", pa.date32()),
        ("balance", pa.decimal128(10, 2)),
    ]
)


def _mapping(name: str, original: str, exported: str, chars: int = 0, num: int = 0, dt: int = 0) -> dict[str, Any]:
    return {
        "columnName": name,
        "originalType": original,
        "expectedExportedType": exported,
        "originalCharMaxLength": chars,
        "originalNumPrecision": num,
        "originalDateTimePrecision": dt,
    }


UTF8 = "binary (UTF8)"
ORDERS_MAPPINGS = [
    _mapping("order_id", "bigint", "int64", num=64),
    _mapping("customer", "text", UTF8),
    _mapping("created_at", "date", UTF8),
    _mapping("updated_at", "timestamp without time zone", UTF8, dt=6),
    _mapping("paid_at", "timestamp with time zone", UTF8, dt=6),
    _mapping("amount", "numeric", UTF8, num=12),
    _mapping("ratio", "numeric", UTF8),
    _mapping("payload", "jsonb", UTF8),
    _mapping("ref", "uuid", UTF8),
]
CUSTOMERS_MAPPINGS = [
    _mapping("customer_id", "bigint", "int64", num=19),
    _mapping("name", "varchar", UTF8, chars=100),
    _mapping("signed_up", "datetime", "int64 (TIMESTAMP_MICRO)"),
    _mapping("birthday", "date", "int32 (DATE)"),
    _mapping("balance", "decimal", "fixed_len_byte_array (DECIMAL(10,2))", num=10),
]
WARNING_ENTRY = {"target": "mydb", "warningMessage": "Table public.big_blobs was skipped: a row is close to 2 GB"}


def orders_rows(first: int, n: int) -> pa.Table:
    """Rows of ``mydb.public.orders`` as the database holds them."""
    rows = []
    for i in range(first, first + n):
        updated = datetime(2021, 1, 1, 8, 30) + timedelta(days=11 * i, seconds=37 * i, microseconds=(i % 3) * 250_000)
        rows.append(
            {
                "order_id": i,
                "customer": f"customer {i % 7}",
                "created_at": date(2021, 1, 1) + timedelta(days=11 * i),  # 2021 .. 2023
                "updated_at": updated,
                "paid_at": None if i % 5 == 0 else (updated + timedelta(hours=1)).replace(tzinfo=timezone.utc),
                "amount": Decimal(i * 137 - 500).scaleb(-2),
                "ratio": f"{i / 7:.5f}",
                "payload": json.dumps({"n": i}),
                "ref": str(uuid.UUID(int=i)),
            }
        )
    return pa.Table.from_pylist(rows, schema=ORDERS_SCHEMA)


def _pg_timestamp(moment: datetime) -> str:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return text + (f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else "")


def as_exported(table: pa.Table) -> pa.Table:
    """The rows as a PostgreSQL export writes them: dates, timestamps and numerics as PostgreSQL prints them."""
    columns: dict[str, list[Any]] = {name: table[name].to_pylist() for name in table.column_names}
    columns["created_at"] = [d.isoformat() for d in columns["created_at"]]
    columns["updated_at"] = [_pg_timestamp(t) for t in columns["updated_at"]]
    paid: list[str | None] = []
    for i, moment in enumerate(columns["paid_at"]):
        if moment is None:
            paid.append(None)
        elif i % 2:  # the same instant printed in another zone
            paid.append(_pg_timestamp((moment + timedelta(hours=2)).replace(tzinfo=None)) + "+02")
        else:
            paid.append(_pg_timestamp(moment.replace(tzinfo=None)) + "+00")
    columns["paid_at"] = paid
    columns["amount"] = [str(a) for a in columns["amount"]]
    return pa.table(
        {name: pa.array(values, pa.int64() if name == "order_id" else pa.string()) for name, values in columns.items()}
    )


def customers_rows() -> pa.Table:
    rows = [
        {
            "customer_id": i,
            "name": f"customer {i}",
            "signed_up": datetime(2020, 5, 1, 12) + timedelta(days=3 * i, microseconds=i),
            "birthday": date(1980, 1, 1) + timedelta(days=400 * i),
            "balance": Decimal(i * 1001).scaleb(-2),
        }
        for i in range(7)
    ]
    return pa.Table.from_pylist(rows, schema=CUSTOMERS_SCHEMA)


@dataclass(frozen=True)
class RdsExport:
    root: str
    """The export's root folder (what ``dbsnaplake manifest build`` is given)."""
    orders: pa.Table
    """``mydb.public.orders`` with its original types: what the data lake should hold."""
    customers: pa.Table
    orders_files: tuple[str, ...]


def _entry(target: str, mappings: list[dict[str, Any]], overrides: Mapping[str, Any]) -> dict[str, Any]:
    entry = {
        "tableStatistics": {
            "extractionStartTime": "Mar 1, 2024 4:20:11 AM",
            "extractionEndTime": "Mar 1, 2024 4:21:40 AM",
            "partitioningInfo": {"numberOfPartitions": 3, "numberOfCompletedPartitions": 3},
        },
        "schemaMetadata": {"originalTypeMappings": mappings},
        "status": "COMPLETE",
        "sizeGB": 1.2e-05,
        "target": target,
    }
    entry.update(overrides)
    return entry


def write_json(uri: str, data: Any) -> None:
    storage.write_bytes(uri, json.dumps(data, indent=2).encode())


def write_rds_export(
    root: str,
    *,
    info: Mapping[str, Any] | None = None,
    entries: Mapping[str, Mapping[str, Any]] | None = None,
    folders: Mapping[str, str] | None = None,
    bad: Mapping[str, str] | None = None,
) -> RdsExport:
    """``info``/``entries`` override fields of ``export_info`` / a target's ``perTableStatus`` item; ``folders``
    moves a target's files (relative to the export root); ``bad`` puts ``{column: text}`` in the first row of
    the last orders file (the expected table then holds null there)."""
    export = storage.join(root, "exports", EXPORT_ID)
    export_info = {
        "exportTaskIdentifier": EXPORT_ID,
        "sourceArn": "arn:aws:rds:eu-west-1:123456789012:snapshot:rds:mydb-2024-03-01-04-05",
        "exportOnly": [],
        "snapshotTime": "Mar 1, 2024 4:05:06 AM",
        "taskStartTime": "Mar 1, 2024 4:10:00 AM",
        "taskEndTime": "Mar 1, 2024 4:25:00 AM",
        "s3Bucket": "my-bucket",
        "s3Prefix": "exports",
        "exportedFilesPath": f"exports/{EXPORT_ID}",
        "iamRoleArn": "arn:aws:iam::123456789012:role/rds-s3-export",
        "kmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000",
        "status": "COMPLETE",
        "percentProgress": 100,
        "totalExportedDataInGB": 2.4e-05,
        **(info or {}),
    }
    write_json(storage.join(export, f"export_info_{EXPORT_ID}.json"), export_info)
    entries = entries or {}
    write_json(
        storage.join(export, f"export_tables_info_{EXPORT_ID}_from_1_to_2.json"),
        {"perTableStatus": [_entry(ORDERS, ORDERS_MAPPINGS, entries.get(ORDERS, {})), WARNING_ENTRY]},
    )
    write_json(
        storage.join(export, f"export_tables_info_{EXPORT_ID}_from_3_to_3.json"),
        {"perTableStatus": [_entry(CUSTOMERS, CUSTOMERS_MAPPINGS, entries.get(CUSTOMERS, {}))]},
    )
    folders = folders or {}
    orders_folder = storage.join(export, folders.get(ORDERS, "mydb/public.orders"))
    orders = orders_rows(0, ROWS_PER_FILE * len(ORDERS_FILES))
    uris = []
    for index, (batch, name) in enumerate(ORDERS_FILES):
        part = as_exported(orders.slice(index * ROWS_PER_FILE, ROWS_PER_FILE))
        if bad and index == len(ORDERS_FILES) - 1:
            for column, text in bad.items():
                values = part[column].to_pylist()
                values[0] = text
                part = part.set_column(part.schema.get_field_index(column), column, pa.array(values, pa.string()))
        uri = storage.join(orders_folder, batch, name.format(uuid=uuid.UUID(int=index + 1)))
        write_parquet(uri, part, compression="gzip")
        storage.write_bytes(storage.join(orders_folder, batch, "_SUCCESS"), b"")
        uris.append(uri)
    if bad:
        row = ROWS_PER_FILE * (len(ORDERS_FILES) - 1)
        for column in bad:
            values = orders[column].to_pylist()
            values[row] = None
            orders = orders.set_column(
                orders.schema.get_field_index(column), column, pa.array(values, orders[column].type)
            )
    customers = customers_rows()
    customers_folder = storage.join(export, folders.get(CUSTOMERS, "mydb/mydb.customers"))
    customers_uri = storage.join(customers_folder, "1", f"part-00000-{uuid.UUID(int=99)}-c000.gz.parquet")
    write_parquet(customers_uri, customers, compression="gzip")
    return RdsExport(export, orders, customers, tuple(uris))
