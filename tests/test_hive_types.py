"""Arrow types as Hive/Glue/Athena, Spark and Trino declare them: every type the lake can hold, nested types
recursively, and a clear refusal (naming the column) for the few that Hive tables cannot declare."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dbsnaplake.errors import SnapshotError
from dbsnaplake.formats.hive import column_type, default_table_name, quote

POINT = pa.struct([("x", pa.float64()), ("odd name", pa.int32())])
TYPES = [
    # arrow type, Hive (Glue, Athena), Spark, Trino
    (pa.int8(), "tinyint", "tinyint", "tinyint"),
    (pa.int16(), "smallint", "smallint", "smallint"),
    (pa.int32(), "int", "int", "integer"),
    (pa.int64(), "bigint", "bigint", "bigint"),
    (pa.uint8(), "smallint", "smallint", "smallint"),
    (pa.uint16(), "int", "int", "integer"),
    (pa.uint32(), "bigint", "bigint", "bigint"),
    (pa.uint64(), "decimal(20,0)", "decimal(20,0)", "decimal(20,0)"),
    (pa.float32(), "float", "float", "real"),
    (pa.float64(), "double", "double", "double"),
    (pa.decimal128(12, 2), "decimal(12,2)", "decimal(12,2)", "decimal(12,2)"),
    (pa.decimal256(38, 10), "decimal(38,10)", "decimal(38,10)", "decimal(38,10)"),
    (pa.string(), "string", "string", "varchar"),
    (pa.large_string(), "string", "string", "varchar"),
    (pa.binary(), "binary", "binary", "varbinary"),
    (pa.large_binary(), "binary", "binary", "varbinary"),
    (pa.binary(16), "binary", "binary", "varbinary"),
    (pa.bool_(), "boolean", "boolean", "boolean"),
    (pa.date32(), "date", "date", "date"),
    (pa.timestamp("ms"), "timestamp", "timestamp_ntz", "timestamp(3)"),
    (pa.timestamp("us"), "timestamp", "timestamp_ntz", "timestamp(6)"),
    (pa.timestamp("ns"), "timestamp", "timestamp_ntz", "timestamp(9)"),
    (pa.timestamp("us", "UTC"), "timestamp", "timestamp", "timestamp(6)"),
    (pa.timestamp("ms", "Europe/Paris"), "timestamp", "timestamp", "timestamp(3)"),
    (pa.duration("us"), "bigint", "bigint", "bigint"),
    (pa.dictionary(pa.int32(), pa.string()), "string", "string", "varchar"),
    (pa.list_(pa.int64()), "array<bigint>", "array<bigint>", "array(bigint)"),
    (pa.large_list(pa.string()), "array<string>", "array<string>", "array(varchar)"),
    (pa.list_(pa.float32(), 3), "array<float>", "array<float>", "array(real)"),
    (
        POINT,
        "struct<x:double,`odd name`:int>",
        "struct<x:double,`odd name`:int>",
        'row("x" double, "odd name" integer)',
    ),
    (
        pa.map_(pa.string(), pa.list_(POINT)),
        "map<string,array<struct<x:double,`odd name`:int>>>",
        "map<string,array<struct<x:double,`odd name`:int>>>",
        'map(varchar, array(row("x" double, "odd name" integer)))',
    ),
]


@pytest.mark.parametrize(("arrow", "hive", "spark", "trino"), TYPES, ids=[str(t[0]) for t in TYPES])
def test_every_lake_type_has_its_name_in_each_dialect(arrow: pa.DataType, hive: str, spark: str, trino: str) -> None:
    assert column_type(arrow, "athena", "c") == hive
    assert column_type(arrow, "spark", "c") == spark
    assert column_type(arrow, "trino", "c") == trino


@pytest.mark.parametrize(
    "arrow",
    [pa.time64("us"), pa.time32("ms"), pa.null(), pa.float16(), pa.decimal256(40, 2), pa.list_(pa.time64("ns"))],
    ids=str,
)
def test_a_type_hive_cannot_declare_is_refused_naming_the_column(arrow: pa.DataType) -> None:
    with pytest.raises(SnapshotError, match=r"column 'when' is .*cast it in --transform"):
        column_type(arrow, "athena", "when")


def test_identifiers_are_quoted_so_that_any_name_survives() -> None:
    assert quote("we`ird, col", "athena") == "`we``ird, col`"
    assert quote("we`ird, col", "spark") == "`we``ird, col`"
    assert quote('say "hi"', "trino") == '"say ""hi"""'


def test_the_default_table_name_is_the_lake_folder_as_athena_accepts_it() -> None:
    assert default_table_name("s3://b/datalake/mydb/orders/") == "orders"
    assert default_table_name("s3://b/datalake/mydb/Orders-EU_2021_01_01_08_30_00") == "orders_eu_2021_01_01_08_30_00"
