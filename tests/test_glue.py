"""``--glue-database``: the published Parquet lake registered in AWS Glue (moto's Glue, served by the same local
server process as S3), read back with boto3 as Athena would: columns, types, partition keys and their types,
every partition with its values and location; kept in step with ``--publish latest``, idempotent on rerun, and
completed by a rerun of ``publish`` when the registration failed after the commit."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pyarrow as pa
import pytest

from dbsnaplake import storage
from dbsnaplake.api import PublishedTable, register_in_glue
from dbsnaplake.errors import StageError
from dbsnaplake.formats.hive import Partition
from dbsnaplake.ledger import latest_root

from .support.cli import dbsnaplake
from .support.s3_server import aws_environment, free_port
from .support.snapshots import S3_BUCKET, make_orders_snapshot
from .support.typed_lake import HOSTILE_COLUMN, partition_folders, staging_of, typed_lake_options, typed_transform

COLUMNS = [
    {"Name": "order_id", "Type": "bigint"},
    {"Name": "customer_id", "Type": "bigint"},
    {"Name": "order_time", "Type": "timestamp"},
    {"Name": "amount", "Type": "double"},
    {"Name": "status", "Type": "string"},
    {"Name": HOSTILE_COLUMN, "Type": "string"},
]
PARTITION_KEYS = [
    {"Name": "year", "Type": "int"},
    {"Name": "month", "Type": "string"},
]
FIRST, SECOND = "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"


def glue_table(database: str, endpoint: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The table and its partitions, as Glue gives them back."""
    client = boto3.client("glue", endpoint_url=endpoint, region_name="us-east-1")
    table = client.get_table(DatabaseName=database, Name="orders")["Table"]
    pages = client.get_paginator("get_partitions").paginate(DatabaseName=database, TableName="orders")
    return table, [p for page in pages for p in page["Partitions"]]


def assert_registered_as_published(database: str, endpoint: str, lake: str) -> list[dict[str, Any]]:
    root = latest_root(lake)
    assert root is not None
    table, partitions = glue_table(database, endpoint)
    assert table["StorageDescriptor"]["Columns"] == COLUMNS
    assert table["PartitionKeys"] == PARTITION_KEYS
    assert table["StorageDescriptor"]["Location"] == root
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    found = {tuple(p["Values"]): p["StorageDescriptor"]["Location"] for p in partitions}
    assert len(found) == len(partitions), "a partition is registered twice"
    assert found == partition_folders(root)
    return partitions


@pytest.mark.slow
def test_a_latest_lake_is_registered_kept_in_step_and_a_failed_registration_is_finished_by_publish(
    s3_server: str,
) -> None:
    root = f"s3://{S3_BUCKET}/glue-{uuid.uuid4().hex[:10]}"
    lake = storage.join(root, "datalake", "db", "orders")
    database = f"analytics_{uuid.uuid4().hex[:8]}"
    manifest = make_orders_snapshot(root, n_files=1, rows_per_file=1_000)
    first = typed_lake_options(root, manifest, FIRST, typed_transform(before="2022-07-01"))

    with aws_environment(AWS_ENDPOINT_URL_GLUE=f"http://127.0.0.1:{free_port()}", AWS_MAX_ATTEMPTS="1"):
        unreachable = dbsnaplake("run", *first, "--glue-database", database)
    assert unreachable.returncode == 1
    assert "rerun 'dbsnaplake publish'" in unreachable.stderr
    assert latest_root(lake) is not None, "the lake is committed before it is registered"

    finished = dbsnaplake("publish", "--staging", staging_of(root, FIRST), "--glue-database", database)
    assert finished.returncode == 0, finished.stderr
    partitions = assert_registered_as_published(database, s3_server, lake)
    assert ("2021", "02") in {tuple(p["Values"]) for p in partitions}, "month stays a zero-padded string"
    assert any("__HIVE_DEFAULT_PARTITION__" in p["Values"] for p in partitions)

    second = typed_lake_options(root, manifest, SECOND, typed_transform(before="2022-01-01"))
    moved = dbsnaplake("run", *second, "--glue-database", database)
    assert moved.returncode == 0, moved.stderr
    assert f"Glue table {database}.orders updated" in moved.stdout
    partitions = assert_registered_as_published(database, s3_server, lake)
    assert {p["Values"][0] for p in partitions} == {"2021"}, "the 2022 partitions are gone"

    again = dbsnaplake("publish", "--staging", staging_of(root, SECOND), "--glue-database", database)
    assert again.returncode == 0, again.stderr
    assert assert_registered_as_published(database, s3_server, lake) == partitions


def test_partitions_go_to_glue_in_batches_and_only_changes_are_sent(s3_server: str) -> None:
    database = f"batches_{uuid.uuid4().hex[:8]}"
    columns = (pa.field("id", pa.int64()),)
    keys = (pa.field("day", pa.int32()), pa.field("code", pa.string()))

    def table(days: range, version: str = "2024_01_01_00_00_00") -> PublishedTable:
        root = f"s3://{S3_BUCKET}/lake/version={version}/"
        partitions = tuple(Partition((str(d), "01"), f"{root}day={d}/code=01/") for d in days)
        return PublishedTable(root, version, columns, keys, partitions)

    created = register_in_glue(table(range(250)), database, "events")
    assert (created.table_change, created.partitions_created) == ("created", 250)
    shrunk = register_in_glue(table(range(120)), database, "events")
    assert (shrunk.table_change, shrunk.partitions_created, shrunk.partitions_updated) == ("unchanged", 0, 0)
    assert shrunk.partitions_deleted == 130
    client = boto3.client("glue", endpoint_url=s3_server, region_name="us-east-1")
    versions = len(client.get_table_versions(DatabaseName=database, TableName="events")["TableVersions"])
    same = register_in_glue(table(range(120)), database, "events")
    assert (same.table_change, same.partitions_created, same.partitions_updated, same.partitions_deleted) == (
        "unchanged",
        0,
        0,
        0,
    )
    assert len(client.get_table_versions(DatabaseName=database, TableName="events")["TableVersions"]) == versions
    moved = register_in_glue(table(range(120), "2024_02_01_00_00_00"), database, "events")
    assert (moved.table_change, moved.partitions_created, moved.partitions_updated, moved.partitions_deleted) == (
        "updated",
        0,
        120,
        0,
    )

    pages = client.get_paginator("get_partitions").paginate(DatabaseName=database, TableName="events")
    partitions = [p for page in pages for p in page["Partitions"]]
    assert sorted(int(p["Values"][0]) for p in partitions) == list(range(120))
    assert {p["StorageDescriptor"]["Location"].split("/")[4] for p in partitions} == {"version=2024_02_01_00_00_00"}


def test_a_table_dbsnaplake_did_not_make_is_not_overwritten(s3_server: str) -> None:
    database = f"foreign_{uuid.uuid4().hex[:8]}"
    client = boto3.client("glue", endpoint_url=s3_server, region_name="us-east-1")
    client.create_database(DatabaseInput={"Name": database})
    theirs = {
        "Name": "orders",
        "StorageDescriptor": {"Columns": [{"Name": "x", "Type": "int"}], "Location": "s3://b/x/"},
    }
    client.create_table(DatabaseName=database, TableInput=theirs)
    published = PublishedTable("s3://b/lake/", "2024_01_01_00_00_00", (pa.field("id", pa.int64()),), (), ())

    with pytest.raises(StageError, match=r"exists and was not made by dbsnaplake.*drop or rename that table"):
        register_in_glue(published, database, "orders")
    found = client.get_table(DatabaseName=database, Name="orders")["Table"]
    assert found["StorageDescriptor"]["Location"] == "s3://b/x/"
