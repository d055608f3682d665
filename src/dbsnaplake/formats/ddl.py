"""``dbsnaplake ddl``: the SQL that declares the published Parquet lake as an external table, with its partition
columns typed as the plan had them (``month="01"`` stays a string), for engines that do not use Glue.

- ``athena`` (Hive DDL): ``CREATE EXTERNAL TABLE ... PARTITIONED BY (...) STORED AS PARQUET LOCATION ...``, then
  ``MSCK REPAIR TABLE`` (or the partition projection it prints as a comment, which needs no partition loading).
- ``spark``: Spark SQL's data-source table (``USING PARQUET``; Hive-format DDL needs a Hive metastore), then
  ``MSCK REPAIR TABLE``.
- ``trino``: the Hive connector's ``CREATE TABLE ... WITH (external_location, partitioned_by)``, then
  ``system.sync_partition_metadata``.

The location is the published version folder: a ``latest`` lake's current one, so after the next publish the DDL
is made again (or the table registered in Glue with ``--glue-database``, which ``publish`` keeps up to date).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa

from dbsnaplake.formats.hive import (
    Dialect,
    PublishedTable,
    catalog_location,
    column_type,
    quote,
)

INDENT = "  "
PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_.-]+$")  # a value Hive does not escape in a folder name
MAX_ENUM_VALUES = 1_000  # Athena partition projection lists at most this many values per column here


def table_ddl(published: PublishedTable, table: str, dialect: Dialect = "athena", database: str | None = None) -> str:
    """The statements that declare a published lake as the table ``database.table``, ready to paste."""
    name = ".".join(quote(part, dialect) for part in (database, table) if part)
    if dialect == "trino":
        return trino_ddl(published, name, database, table)
    if dialect == "spark":
        return spark_ddl(published, name)
    return athena_ddl(published, name)


def _columns(fields: Sequence[pa.Field], dialect: Dialect) -> str:
    return ",\n".join(f"{INDENT}{quote(f.name, dialect)} {column_type(f.type, dialect, f.name)}" for f in fields)


def hive_string(text: str) -> str:
    """A string literal of Hive and Spark SQL (backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def athena_ddl(table: PublishedTable, name: str) -> str:
    lines = [f"CREATE EXTERNAL TABLE {name} (", _columns(table.columns, "athena"), ")"]
    if table.partition_keys:
        lines += ["PARTITIONED BY (", _columns(table.partition_keys, "athena"), ")"]
    lines += ["STORED AS PARQUET", f"LOCATION {hive_string(catalog_location(table.location))};"]
    if table.partition_keys:
        lines += ["", f"MSCK REPAIR TABLE {name};", *projection_hint(table, name)]
    return "\n".join(lines) + "\n"


def projection_hint(table: PublishedTable, name: str) -> list[str]:
    """Athena partition projection over the published partitions' values (instead of MSCK REPAIR TABLE), as
    comments: a query then needs no partition loading, but a new partition value needs the properties updated."""
    values = [sorted({str(p.values[i]) for p in table.partitions}) for i in range(len(table.partition_keys))]
    plain = all(p.values and all(v is not None and PLAIN_VALUE.match(v) for v in p.values) for p in table.partitions)
    if not plain or any(len(v) > MAX_ENUM_VALUES for v in values):
        return []  # null, escaped or too many values: projection would build other paths than the folders'
    properties = ["'projection.enabled'='true'"]
    for key, found in zip(table.partition_keys, values, strict=True):
        properties.append(f"{hive_string(f'projection.{key.name}.type')}='enum'")
        properties.append(f"{hive_string(f'projection.{key.name}.values')}={hive_string(','.join(found))}")
    return [
        "-- or, instead of MSCK REPAIR TABLE, Athena partition projection (no partitions to load):",
        f"-- ALTER TABLE {name} SET TBLPROPERTIES ({', '.join(properties)});",
    ]


def spark_ddl(table: PublishedTable, name: str) -> str:
    lines = [f"CREATE TABLE {name} (", _columns((*table.columns, *table.partition_keys), "spark"), ")", "USING PARQUET"]
    if table.partition_keys:
        lines.append(f"PARTITIONED BY ({', '.join(quote(f.name, 'spark') for f in table.partition_keys)})")
    lines.append(f"LOCATION {hive_string(catalog_location(table.location))};")
    if table.partition_keys:
        lines += ["", f"MSCK REPAIR TABLE {name};"]
    return "\n".join(lines) + "\n"


def trino_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def trino_ddl(table: PublishedTable, name: str, database: str | None, table_name: str) -> str:
    properties = ["format = 'PARQUET'", f"external_location = {trino_string(catalog_location(table.location))}"]
    if table.partition_keys:
        keys = ", ".join(trino_string(f.name) for f in table.partition_keys)
        properties.append(f"partitioned_by = ARRAY[{keys}]")
    lines = [
        f"CREATE TABLE {name} (",
        _columns((*table.columns, *table.partition_keys), "trino"),  # Trino wants the partition columns last
        ")",
        "WITH (",
        ",\n".join(INDENT + p for p in properties),
        ");",
    ]
    if table.partition_keys:
        schema = trino_string(database) if database else "CURRENT_SCHEMA"
        lines += ["", f"CALL system.sync_partition_metadata({schema}, {trino_string(table_name)}, 'ADD');"]
    return "\n".join(lines) + "\n"
