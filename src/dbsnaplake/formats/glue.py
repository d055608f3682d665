"""Registering the published Parquet lake in the AWS Glue Data Catalog (``--glue-database``), so Athena, Trino
(Hive connector on Glue), EMR Spark and Redshift Spectrum query it by name.

The table is described by the commit (see :mod:`.hive`): its columns and partition keys with their types, its
location (the version folder; in ``latest`` mode the current one) and one Glue partition per partition folder.
Registering is idempotent: the table is created or updated, partitions are created, updated (new location or
columns) or deleted (no longer in the version), never duplicated; a rerun of ``publish`` finishes what a crash
left. Glue has no multi-partition transaction, so while a ``latest`` update runs a query may see some partitions
of the old version and some of the new one (both are committed, complete folders).

The client is boto3's, configured as the S3 storage is: the standard AWS environment (``AWS_PROFILE``,
``AWS_ACCESS_KEY_ID``, ...), ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_GLUE``), region ``AWS_REGION``
(``us-east-1`` when unset).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from dbsnaplake.errors import ConfigError, StageError
from dbsnaplake.formats.hive import (
    PARQUET_INPUT_FORMAT,
    PARQUET_OUTPUT_FORMAT,
    PARQUET_SERDE,
    Partition,
    PublishedTable,
    catalog_location,
    hive_columns,
    partition_value_text,
)
from dbsnaplake.storage.aws import DEFAULT_REGION, aws_region

CREATE_BATCH = 100  # batch_create_partition and batch_update_partition take at most 100 partitions
DELETE_BATCH = 25  # batch_delete_partition takes at most 25
VERSION_PARAMETER = "dbsnaplake.version"
TableChange = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class GlueRegistration:
    """What :func:`register_in_glue` did."""

    database: str
    table: str
    location: str
    table_change: TableChange
    """What happened to the table itself: ``created``, ``updated`` or ``unchanged``."""
    partitions_created: int
    partitions_updated: int
    partitions_deleted: int

    def __str__(self) -> str:
        return (
            f"Glue table {self.database}.{self.table} {self.table_change} at {self.location}: partitions "
            f"{self.partitions_created:,} created, {self.partitions_updated:,} updated, "
            f"{self.partitions_deleted:,} deleted"
        )


def glue_client() -> Any:
    """A boto3 Glue client from the standard AWS environment (endpoint and region as for S3)."""
    try:
        import boto3
    except ImportError:
        raise ConfigError("--glue-database needs boto3: pip install 'dbsnaplake[glue]'") from None
    region = aws_region() or DEFAULT_REGION
    return boto3.client("glue", region_name=region)


def register_in_glue(published: PublishedTable, database: str, name: str) -> GlueRegistration:
    """Create or update the Glue table ``database.name`` of a published lake (and the database when missing), then
    its partitions. Failures raise a :class:`StageError` saying to rerun ``dbsnaplake publish``."""
    client = glue_client()
    try:
        ensure_database(client, database)
        change = put_table(client, database, name, published)
        counts = sync_partitions(client, database, name, published)
    except Exception as exc:
        if not _is_aws_error(exc):
            raise
        raise StageError(
            f"registering {published.location} as Glue table {database}.{name} failed: {type(exc).__name__}: {exc} — check the "
            "AWS credentials and Glue permissions, then rerun 'dbsnaplake publish' (the lake is committed; only the "
            "registration is redone)"
        ) from None
    return GlueRegistration(database, name, catalog_location(published.location), change, *counts)


def _is_aws_error(exc: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, (BotoCoreError, ClientError))


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def ensure_database(client: Any, database: str) -> None:
    try:
        client.get_database(Name=database)
    except Exception as exc:
        if _error_code(exc) != "EntityNotFoundException":
            raise
        try:
            client.create_database(DatabaseInput={"Name": database})
        except Exception as again:
            if _error_code(again) != "AlreadyExistsException":  # another publisher made it meanwhile
                raise


def storage_descriptor(columns: Sequence[pa.Field], location: str) -> dict[str, Any]:
    return {
        "Columns": hive_columns(columns),
        "Location": catalog_location(location),
        "InputFormat": PARQUET_INPUT_FORMAT,
        "OutputFormat": PARQUET_OUTPUT_FORMAT,
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
    }


def table_input(name: str, table: PublishedTable) -> dict[str, Any]:
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", VERSION_PARAMETER: table.version},
        "StorageDescriptor": storage_descriptor(table.columns, table.location),
        "PartitionKeys": hive_columns(table.partition_keys),
    }


def put_table(client: Any, database: str, name: str, table: PublishedTable) -> TableChange:
    """Create the table, or update it when it exists and differs (every update archives a table version in Glue).
    A table of that name that dbsnaplake did not make is refused, not overwritten."""
    wanted = table_input(name, table)
    try:
        client.create_table(DatabaseName=database, TableInput=wanted)
        return "created"
    except Exception as exc:
        if _error_code(exc) != "AlreadyExistsException":
            raise
    found = client.get_table(DatabaseName=database, Name=name)["Table"]
    if VERSION_PARAMETER not in (found.get("Parameters") or {}):
        raise StageError(
            f"Glue table {database}.{name} exists and was not made by dbsnaplake (it has no {VERSION_PARAMETER} "
            "parameter): drop or rename that table, or publish to a data-lake folder of another name (the table's "
            "name), then rerun 'dbsnaplake publish'"
        )
    if any(found.get(key) != wanted[key] for key in ("Parameters", "PartitionKeys", "TableType")) or _differs(
        found, wanted
    ):
        client.update_table(DatabaseName=database, TableInput=wanted)
        return "updated"
    return "unchanged"


def partition_input(partition: Partition, table: PublishedTable) -> dict[str, Any]:
    return {
        "Values": [partition_value_text(v) for v in partition.values],
        "StorageDescriptor": storage_descriptor(table.columns, partition.location),
        "Parameters": {VERSION_PARAMETER: table.version},
    }


def existing_partitions(client: Any, database: str, name: str) -> dict[tuple[str, ...], dict[str, Any]]:
    pages = client.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=name)
    return {tuple(p["Values"]): p for page in pages for p in page["Partitions"]}


def sync_partitions(client: Any, database: str, name: str, table: PublishedTable) -> tuple[int, int, int]:
    """Make the table's Glue partitions those of ``table``: create the missing, update those whose location or
    columns differ, delete those the version does not have. Returns the three counts."""
    existing = existing_partitions(client, database, name)
    wanted = {tuple(p["Values"]): p for p in (partition_input(q, table) for q in table.partitions)}
    create = [p for values, p in wanted.items() if values not in existing]
    update = [p for values, p in wanted.items() if values in existing and _differs(existing[values], p)]
    delete = [values for values in existing if values not in wanted]
    for chunk in _chunks(create, CREATE_BATCH):
        _check(client.batch_create_partition(DatabaseName=database, TableName=name, PartitionInputList=chunk))
    for chunk in _chunks(update, CREATE_BATCH):
        entries = [{"PartitionValueList": p["Values"], "PartitionInput": p} for p in chunk]
        _check(client.batch_update_partition(DatabaseName=database, TableName=name, Entries=entries))
    for values_chunk in _chunks(delete, DELETE_BATCH):
        deleting = [{"Values": list(v)} for v in values_chunk]
        _check(client.batch_delete_partition(DatabaseName=database, TableName=name, PartitionsToDelete=deleting))
    return len(create), len(update), len(delete)


def _differs(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    have, want = found.get("StorageDescriptor", {}), wanted["StorageDescriptor"]
    return bool(have.get("Location") != want["Location"] or have.get("Columns") != want["Columns"])


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _check(response: dict[str, Any]) -> None:
    """A batch call answers 200 and lists the partitions it failed: raise for the first one."""
    errors = response.get("Errors") or []
    if errors:
        first = errors[0]
        detail = first.get("ErrorDetail", {})
        raise StageError(
            f"Glue refused {len(errors)} partition(s), first {first.get('PartitionValues')}: "
            f"{detail.get('ErrorCode', '?')}: {detail.get('ErrorMessage', '')} — fix the cause, then rerun "
            "'dbsnaplake publish'"
        )
