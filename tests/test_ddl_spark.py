"""``dbsnaplake ddl`` run as a user runs it: the printed DDL executed in Spark SQL over a real local lake, then
MSCK REPAIR TABLE and SELECT: the rows, the partition values and the column types are the lake's, ``month="01"``
a string and ``year`` an int as the plan made them (Spark's own partition discovery would read both as ints).

One SparkSession for the module (local[1], Hive metastore in a temporary folder). Spark reads local Parquet only
here: s3a://, Delta and Iceberg need jars from Maven, which this machine cannot reach."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from dbsnaplake import storage
from dbsnaplake.formats.hive import column_type

from .support.cli import dbsnaplake
from .support.lake import expected_rows
from .support.snapshots import make_orders_snapshot, orders_config
from .support.spark import java_available, local_spark, sql_statements
from .support.typed_lake import EVERY_TYPE, HOSTILE_COLUMN, every_type_snapshot, typed_lake_options, typed_transform

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not java_available(), reason="Spark needs Java 17: apt-get install openjdk-17-jre-headless"),
]
TRANSFORM = typed_transform(before="2021-07-01")  # a few partitions: Spark pays per file and per partition
TYPES = {
    "order_id": "bigint",
    "customer_id": "bigint",
    "amount": "double",
    "status": "string",
    HOSTILE_COLUMN: "string",
    "year": "int",
    "month": "string",
}


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with local_spark(tmp_path_factory.mktemp("spark")) as session:
        yield session


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, pl.DataFrame]:
    """A published ``latest`` lake on local disk, and the rows it should hold."""
    root = str(tmp_path_factory.mktemp("lake"))
    manifest = make_orders_snapshot(root, n_files=2, rows_per_file=400)
    result = dbsnaplake("run", *typed_lake_options(root, manifest, "2024-01-01T00:00:00Z", TRANSFORM))
    assert result.returncode == 0, result.stderr
    expected = expected_rows(orders_config(root, manifest, transform=TRANSFORM, sort_by=()))
    return storage.join(root, "datalake", "db", "orders"), expected


def spark_rows(spark: Any, ddl: str, table: str) -> tuple[dict[str, str], pl.DataFrame]:
    for statement in sql_statements(ddl):
        spark.sql(statement)
    frame = spark.sql(f"SELECT * FROM {table}")
    types = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    rows = [row.asDict() for row in frame.collect()]
    return types, pl.DataFrame(rows, schema=list(types), orient="row")


@pytest.fixture(scope="module")
def every_type_lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A published historical lake of :data:`EVERY_TYPE`, partitioned by the string ``region``."""
    root = str(tmp_path_factory.mktemp("every-type"))
    lake = storage.join(root, "datalake", "every_type")
    options = ["--staging", storage.join(root, "staging"), "--datalake", lake, "--executor", "inline"]
    result = dbsnaplake("run", "--manifest", every_type_snapshot(root), *options, "--partition-by", "region")
    assert result.returncode == 0, result.stderr
    return lake


def as_spark_gives(row: dict[str, Any]) -> dict[str, Any]:
    """A row of :data:`EVERY_TYPE` as Spark gives it back: a duration as its microseconds (Parquet stores a plain
    INT64), a zoned timestamp as a naive UTC one (the session's zone), a map as a dict."""
    took, at_utc, attrs = row["took"], row["at_utc"], row["attrs"]
    return {
        **row,
        "took": None if took is None else took // dt.timedelta(microseconds=1),
        "at_utc": None if at_utc is None else at_utc.replace(tzinfo=None),
        "attrs": None if attrs is None else dict(attrs),
    }


@pytest.mark.parametrize(("dialect", "timestamp"), [("spark", "timestamp_ntz"), ("athena", "timestamp")])
def test_spark_reads_the_lake_through_the_ddl_with_the_planned_types(
    spark: Any, lake: tuple[str, pl.DataFrame], dialect: str, timestamp: str
) -> None:
    datalake, expected = lake
    printed = dbsnaplake("ddl", "--datalake", datalake, "--dialect", dialect, "--table", f"orders_{dialect}")
    assert printed.returncode == 0, printed.stderr
    assert "MSCK REPAIR TABLE" in printed.stdout

    types, actual = spark_rows(spark, printed.stdout, f"orders_{dialect}")

    assert types == {**TYPES, "order_time": timestamp}
    assert actual["month"].drop_nulls().str.len_chars().unique().to_list() == [2], "month stays '01', not 1"
    assert actual["month"].null_count() == expected["month"].null_count() > 0, "the null partition reads as null"
    columns = list(expected.columns)
    assert (
        actual.select(columns)
        .sort("order_id")
        .equals(expected.with_columns(pl.col("year").cast(pl.Int32)).sort("order_id"), null_equal=True)
    )


def by_i64(row: dict[str, Any]) -> tuple[bool, int]:
    return row["i64"] is None, row["i64"] or 0


@pytest.mark.parametrize("dialect", ["spark", "athena"])
def test_spark_reads_every_lake_type_through_the_ddl(spark: Any, every_type_lake: str, dialect: str) -> None:
    printed = dbsnaplake("ddl", "--datalake", every_type_lake, "--dialect", dialect, "--table", f"every_{dialect}")
    assert printed.returncode == 0, printed.stderr
    for statement in sql_statements(printed.stdout):
        spark.sql(statement)
    frame = spark.sql(f"SELECT * FROM every_{dialect}")

    declared = [column_type(f.type, dialect, f.name) for f in EVERY_TYPE.schema]
    assert [f.dataType.simpleString() for f in frame.schema.fields] == [t.replace("`", "") for t in declared]
    actual = sorted((row.asDict(recursive=True) for row in frame.collect()), key=by_i64)
    assert actual == sorted((as_spark_gives(row) for row in EVERY_TYPE.to_pylist()), key=by_i64)
