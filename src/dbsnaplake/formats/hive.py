"""The published Parquet lake as a Hive table: its columns and partition keys with their types, its partitions,
and the Hive/Glue, Spark and Trino names of every Arrow type the lake can hold.

Catalogs (:mod:`.glue`) and DDL (:mod:`.ddl`) describe the table from the commit alone (``_SUCCESS``; see
:func:`dbsnaplake.ledger.read_published`): it lists every file and records the lake's schema, partition columns
included with the types the plan gave them (``month="01"`` stays a string; Hive paths do not say).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from dbsnaplake import storage
from dbsnaplake.errors import SnapshotError
from dbsnaplake.frames.partitioning import DEFAULT_PARTITION, parse_partition_path
from dbsnaplake.frames.readers import read_parquet_footer
from dbsnaplake.frames.schema import decode_schema, encode_schema, plain_schema
from dbsnaplake.records import Commit, CommittedFile

Dialect = Literal["athena", "spark", "trino"]
"""Hive DDL (Athena, and Glue's type names), Spark SQL's own (a data-source table), Trino's Hive connector."""
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
MAX_DECIMAL_DIGITS = 38
UINT64 = "decimal(20,0)"  # as Spark reads a Parquet UINT_64 column
FALLBACK_PARTITION_TYPE = pa.string()


# ---- the schema a commit records ----------------------------------------------------------------------------


def committed_schema(
    version_root: str, files: Sequence[CommittedFile], partition_by: Sequence[str], planned: str | None
) -> str:
    """The lake's schema for its commit: the data columns as a lake file's footer gives them (every file of a
    version has the same schema), then the partition columns with their types in the plan's output schema
    ``planned`` (string when the plan, made by an earlier release, has none)."""
    planned_schema = decode_schema(planned) if planned else pa.schema([])
    if files:
        data = plain_schema(read_parquet_footer(storage.join(version_root, files[0].path), files[0].size).schema)
    else:
        data = planned_schema
    keys = [
        pa.field(name, planned_schema.field(name).type if name in planned_schema.names else FALLBACK_PARTITION_TYPE)
        for name in partition_by
    ]
    return encode_schema(pa.schema([*(f for f in data if f.name not in partition_by), *keys]))


# ---- the published table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """One partition folder of a published version."""

    values: tuple[str | None, ...]
    """The partition's values as text, in the order of the partition keys (``None``: the default partition)."""
    location: str
    """Its folder, ``<version folder>/k1=v1/k2=v2/`` (escaped as Hive escapes it)."""


@dataclass(frozen=True)
class PublishedTable:
    """A published version of a lake as a Hive table."""

    location: str
    """The version folder (a ``latest`` lake's current one)."""
    version: str
    columns: tuple[pa.Field, ...]
    partition_keys: tuple[pa.Field, ...]
    partitions: tuple[Partition, ...]


def published_table(root: str, commit: Commit) -> PublishedTable:
    """The table a commit describes; a commit by an earlier release (no schema) is described from a file's footer,
    its partition columns as strings."""
    if commit.schema is not None:
        schema = decode_schema(commit.schema)
        keys = tuple(commit.partition_by)
    else:
        keys = tuple(parse_partition_path(_folder(commit.files[0].path)))
        schema = decode_schema(committed_schema(root, commit.files, keys, None))
    partitions = sorted({_folder(f.path) for f in commit.files})
    return PublishedTable(
        location=root,
        version=commit.version,
        columns=tuple(f for f in schema if f.name not in keys),
        partition_keys=tuple(schema.field(name) for name in keys),
        partitions=tuple(
            Partition(tuple(parse_partition_path(p).values()), storage.as_dir(storage.join(root, p)))
            for p in partitions
            if keys
        ),
    )


def default_table_name(datalake: str) -> str:
    """The data-lake folder's name as Athena accepts a table name: lower case, ``[a-z0-9_]``."""
    return re.sub(r"[^a-z0-9_]", "_", storage.base_name(storage.as_dir(datalake)).lower())


def catalog_location(uri: str) -> str:
    """A folder as catalogs spell it: ``s3://...`` as it is, a local folder as ``file:///...``."""
    return uri if storage.is_s3(uri) else "file://" + uri


def _folder(path: str) -> str:
    return path.rpartition("/")[0]


# ---- type names ---------------------------------------------------------------------------------------------

_HIVE_SCALARS: dict[str, tuple[str, str]] = {
    # Arrow type name: (Hive/Glue/Spark name, Trino name)
    "int8": ("tinyint", "tinyint"),
    "int16": ("smallint", "smallint"),
    "int32": ("int", "integer"),
    "int64": ("bigint", "bigint"),
    "uint8": ("smallint", "smallint"),
    "uint16": ("int", "integer"),
    "uint32": ("bigint", "bigint"),
    "uint64": (UINT64, UINT64),
    "float": ("float", "real"),
    "double": ("double", "double"),
    "bool": ("boolean", "boolean"),
    "string": ("string", "varchar"),
    "large_string": ("string", "varchar"),
    "string_view": ("string", "varchar"),
    "binary": ("binary", "varbinary"),
    "large_binary": ("binary", "varbinary"),
    "binary_view": ("binary", "varbinary"),
    "date32[day]": ("date", "date"),
    "date64[ms]": ("date", "date"),
}


def column_type(t: pa.DataType, dialect: Dialect, column: str) -> str:
    """The SQL type of a column of Arrow type ``t`` (list, struct and map recursively). A type that Hive tables
    cannot declare (time of day, float16, null, decimals over 38 digits) raises a :class:`SnapshotError` naming
    ``column`` and the cast that fixes it."""
    trino = dialect == "trino"
    if pa.types.is_dictionary(t):
        return column_type(t.value_type, dialect, column)
    if pa.types.is_fixed_size_binary(t):
        return "varbinary" if trino else "binary"
    if pa.types.is_decimal(t):
        if t.precision > MAX_DECIMAL_DIGITS:
            raise _unsupported(column, t, f"Hive decimals hold at most {MAX_DECIMAL_DIGITS} digits")
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return _timestamp(t, dialect)
    if pa.types.is_duration(t):
        return "bigint"  # Parquet stores a duration as a plain INT64 (no logical type): readers see a number
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        item = column_type(t.value_type, dialect, column)
        return f"array({item})" if trino else f"array<{item}>"
    if pa.types.is_map(t):
        key, value = column_type(t.key_type, dialect, column), column_type(t.item_type, dialect, column)
        return f"map({key}, {value})" if trino else f"map<{key},{value}>"
    if pa.types.is_struct(t):
        if trino:
            return (
                "row(" + ", ".join(f"{quote(f.name, dialect)} {column_type(f.type, dialect, column)}" for f in t) + ")"
            )
        return "struct<" + ",".join(f"{_field_name(f.name)}:{column_type(f.type, dialect, column)}" for f in t) + ">"
    names = _HIVE_SCALARS.get(str(t))
    if names is None:
        raise _unsupported(column, t, "Hive tables (Glue, Athena, Spark, Trino) have no such column type")
    return names[1] if trino else names[0]


def _timestamp(t: pa.TimestampType, dialect: Dialect) -> str:
    if dialect == "trino":
        return f"timestamp({ {'ms': 3, 'us': 6, 'ns': 9}.get(t.unit, 3) })"
    if dialect == "spark" and t.tz is None:
        return "timestamp_ntz"  # Spark reads a Parquet timestamp not adjusted to UTC as TIMESTAMP_NTZ only
    return "timestamp"


def _unsupported(column: str, t: pa.DataType, reason: str) -> SnapshotError:
    return SnapshotError(
        f"column {column!r} is {t}: {reason} — cast it in --transform (to string, or a supported number type) and "
        "run again"
    )


def _field_name(name: str) -> str:
    """A struct field's name in a Hive type: as it is when plain, else backquoted."""
    return name if name.replace("_", "a").isalnum() and name.isascii() else quote(name, "athena")


def quote(name: str, dialect: Dialect) -> str:
    """An identifier quoted so any name survives: ``a`b`` → ```a``b``` (Hive, Spark); ``"a""b"`` (Trino)."""
    if dialect == "trino":
        return '"' + name.replace('"', '""') + '"'
    return "`" + name.replace("`", "``") + "`"


def partition_value_text(value: str | None) -> str:
    """A partition value as Glue and the Hive metastore store it (the default partition for null)."""
    return DEFAULT_PARTITION if value is None else value


def hive_columns(fields: Sequence[pa.Field]) -> list[dict[str, str]]:
    """Glue's ``Columns`` / ``PartitionKeys``: ``[{"Name": ..., "Type": ...}]``."""
    return [{"Name": f.name, "Type": column_type(f.type, "athena", f.name)} for f in fields]
