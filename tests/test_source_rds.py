"""RDS / Aurora snapshot exports: one manifest per table from the export's metadata and footers, types the
export wrote as strings restored, and a data lake that holds the database's rows with their real types."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbsnaplake import storage
from dbsnaplake.api import NoProgress, PipelineConfig, S3Location, SnapshotError, SortKey, read_manifest, run_pipeline
from dbsnaplake.frames.readers import FileToRead
from dbsnaplake.frames.schema import decode_schema
from dbsnaplake.manifest import PARQUET_SCHEMA, UNCOMPRESSED_SIZE
from dbsnaplake.records import ColumnRestore, SnapshotReader
from dbsnaplake.sources.base import SourceBuildResult, TableSnapshot
from dbsnaplake.sources.rds import export as rds_export
from dbsnaplake.sources.rds.restore import (
    DATE,
    DECIMAL,
    TIME,
    TIMESTAMP,
    TIMESTAMPTZ,
    read_file,
    restore_column,
)

from .support.lake import lake_files, read_lake, same_rows
from .support.lake import read_file as read_lake_file
from .support.rds_fixtures import (
    CUSTOMERS,
    ORDERS,
    ORDERS_SCHEMA,
    SNAPSHOT_TIME,
    WARNING_ENTRY,
    RdsExport,
    as_exported,
    orders_rows,
    write_rds_export,
)
from .support.snapshots import write_parquet

BY_YEAR = "SELECT *, CAST(EXTRACT(YEAR FROM created_at) AS VARCHAR) AS year FROM snapshot"


def build(export: RdsExport, out: str) -> SourceBuildResult:
    def manifest_uri_for(database: str, table: str, snapshot_time: str | None) -> str:
        return storage.join(out, "manifests", database, table, f"snapshot={snapshot_time}", "manifest-summary.json")

    return rds_export.build(export.root, storage.list_files(export.root), manifest_uri_for, NoProgress())


def table(result: SourceBuildResult, name: str) -> TableSnapshot:
    return next(t for t in result.tables if t.name == name)


def lake_config(root: str, snapshot: TableSnapshot, **overrides: object) -> PipelineConfig:
    settings: dict[str, object] = {
        "location": S3Location(
            s3uri_staging=storage.join(root, "staging", snapshot.name, f"snapshot={SNAPSHOT_TIME}"),
            s3uri_datalake=storage.join(root, "datalake", snapshot.name),
        ),
        "snapshot_manifest": snapshot.manifest_uri,
        "partition_by": ("year",),
        "sort_by": (SortKey("order_id"),),
        "transform": BY_YEAR,
        "workers": 1,
    }
    settings.update(overrides)
    return PipelineConfig(**settings)  # type: ignore[arg-type]


def with_year(rows: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col("created_at").dt.year().cast(pl.String).alias("year"))


# ---- recognising and describing an export ------------------------------------------------------------------------


def test_looks_like_an_export_root_only(local_root: str) -> None:
    export = write_rds_export(local_root)
    plain = storage.join(local_root, "plain")
    write_parquet(storage.join(plain, "part-0.parquet"), pa.table({"x": [1]}))

    assert rds_export.looks_like(export.root, storage.list_files(export.root))
    assert not rds_export.looks_like(plain, storage.list_files(plain))
    parent = storage.join(local_root, "exports")
    assert not rds_export.looks_like(parent, storage.list_files(parent))
    with pytest.raises(SnapshotError, match="did you mean"):
        rds_export.build(parent, storage.list_files(parent), lambda d, t, s: "unused", NoProgress())


def test_build_writes_a_manifest_per_table_from_footers(local_root: str) -> None:
    export = write_rds_export(local_root)
    result = build(export, local_root)

    assert result.kind == "rds-export"
    assert sorted(t.name for t in result.tables) == [CUSTOMERS, ORDERS]
    orders, customers = table(result, ORDERS), table(result, CUSTOMERS)
    assert (orders.database, orders.table, customers.database, customers.table) == (
        "mydb",
        "public.orders",
        "mydb",
        "customers",
    )
    assert (orders.n_file, orders.n_record, orders.snapshot_time) == (4, 100, SNAPSHOT_TIME)
    assert (customers.n_file, customers.n_record) == (1, 7)
    assert any(WARNING_ENTRY["warningMessage"] in w for w in result.warnings)
    assert any("'ratio'" in n and "stays a string" in n for n in result.notes)

    manifest = read_manifest(orders.manifest_uri)
    assert sorted(manifest.column("uri")) == sorted(export.orders_files)  # no _SUCCESS, both name styles
    assert manifest.column("n_record") == [25] * 4
    recorded = [decode_schema(text) for text in manifest.column(PARQUET_SCHEMA)]  # planning reads no footer again
    assert recorded == [pq.read_schema(uri) for uri in manifest.column("uri")]
    assert all(size > 0 for size in manifest.column(UNCOMPRESSED_SIZE))
    reader = manifest.snapshot_details.reader
    assert reader is not None and reader.format == "rds-parquet" and reader.table == ORDERS
    assert reader.schema is not None and decode_schema(reader.schema) == ORDERS_SCHEMA
    assert manifest.details["snapshot_time"] == SNAPSHOT_TIME
    customers_reader = read_manifest(customers.manifest_uri).snapshot_details.reader
    assert customers_reader is not None and customers_reader.columns == ()  # MySQL columns keep the types the export gave them
    assert "mydb.public.orders: 4 files" in str(result)


# ---- the whole pipeline -------------------------------------------------------------------------------------------


def test_lake_holds_the_rows_with_their_original_types(root: str) -> None:
    export = write_rds_export(root)
    orders = table(build(export, root), ORDERS)
    config = lake_config(root, orders, target_file_size=20_000)

    result = run_pipeline(config)

    assert result.validation.ok, result.validation.problems
    assert result.validation.datalake.records == 100
    assert result.validation.bad_values == 0
    schema = read_lake_file(lake_files(config)[0]).schema
    for name in ("created_at", "updated_at", "paid_at", "amount"):
        assert schema.field(name).type == ORDERS_SCHEMA.field(name).type, name
    same_rows(read_lake(config), with_year(export.orders), key="order_id")
    assert {u.split("year=")[1][:4] for u in lake_files(config)} == {"2021", "2022", "2023"}


def test_mysql_table_keeps_its_exported_types(local_root: str) -> None:
    export = write_rds_export(local_root)
    customers = table(build(export, local_root), CUSTOMERS)
    config = lake_config(local_root, customers, partition_by=(), sort_by=(SortKey("customer_id"),), transform=None)

    run_pipeline(config)

    lake = pa.concat_tables(read_lake_file(u) for u in lake_files(config)).sort_by("customer_id")
    for name in ("signed_up", "birthday", "balance"):
        assert lake.schema.field(name).type == export.customers.schema.field(name).type, name
    assert lake.cast(export.customers.schema).equals(export.customers)  # strings may come back as large_string


# ---- refused or reported input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "info", [{"status": "IN_PROGRESS", "percentProgress": 40}, {"percentProgress": 99}, {"status": "FAILED"}]
)
def test_unfinished_export_is_refused(local_root: str, info: dict[str, object]) -> None:
    export = write_rds_export(local_root, info=info)
    with pytest.raises(SnapshotError, match=r"is not complete .* describe-export-tasks"):
        build(export, local_root)


def test_table_not_complete_is_skipped_with_a_warning(local_root: str) -> None:
    export = write_rds_export(local_root, entries={ORDERS: {"status": "FAILED"}})
    result = build(export, local_root)
    assert [t.name for t in result.tables] == [CUSTOMERS]
    assert f"{ORDERS}: skipped, its export status is FAILED, not COMPLETE" in result.warnings


def test_unknown_folder_shape_is_an_error(local_root: str) -> None:
    export = write_rds_export(local_root, folders={ORDERS: "mydb/orders"})
    with pytest.raises(SnapshotError) as caught:
        build(export, local_root)
    message = str(caught.value)
    assert all(s in message for s in (ORDERS, "mydb/public.orders/", "mydb/orders/", "dbsnaplake manifest build"))


def test_folder_found_by_table_suffix_is_reported(local_root: str) -> None:
    export = write_rds_export(local_root, folders={ORDERS: "mydb/sales.orders"})
    result = build(export, local_root)
    assert table(result, ORDERS).n_record == 100
    assert f"{ORDERS}: files found in mydb/sales.orders/ (expected mydb/public.orders/)" in result.notes


def test_two_folders_that_could_hold_a_table_are_an_error(local_root: str) -> None:
    export = write_rds_export(local_root, folders={ORDERS: "mydb/sales.orders"})
    write_parquet(storage.join(export.root, "mydb", "old.orders", "1", "part-0.gz.parquet"), orders_rows(0, 1))
    with pytest.raises(SnapshotError, match=r"several folders could hold it: mydb/old.orders/, mydb/sales.orders/"):
        build(export, local_root)


def test_table_without_files_is_skipped_with_a_warning(local_root: str) -> None:
    export = write_rds_export(local_root)
    storage.delete_folder(storage.join(export.root, "mydb", "mydb.customers"))
    result = build(export, local_root)
    assert [t.name for t in result.tables] == [ORDERS]
    assert any(w.startswith(f"{CUSTOMERS}: skipped, no data files under mydb/mydb.customers/") for w in result.warnings)


# ---- values that do not parse ---------------------------------------------------------------------------------


def test_bad_value_stops_the_run_naming_table_column_file_and_value(local_root: str) -> None:
    export = write_rds_export(local_root, bad={"created_at": "2023-02-30"})
    config = lake_config(local_root, table(build(export, local_root), ORDERS))
    with pytest.raises(SnapshotError) as caught:
        run_pipeline(config)
    message = str(caught.value)
    for needle in (ORDERS, "'created_at'", export.orders_files[-1], "'2023-02-30'", "--on-bad-value null"):
        assert needle in message


def test_bad_value_becomes_null_and_is_counted(local_root: str) -> None:
    export = write_rds_export(local_root, bad={"amount": "NaN"})
    config = lake_config(local_root, table(build(export, local_root), ORDERS), on_bad_value="null")

    result = run_pipeline(config)

    assert result.validation.bad_values == 1
    assert sum(r.n_bad_value for r in result.etl) == 1
    same_rows(read_lake(config), with_year(export.orders), key="order_id")  # null where the bad value was


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (DATE, ["2024-02-29", None], ["2023-02-30", "infinity", "0044-03-15 BC"]),
        (TIMESTAMP, ["2024-01-02 03:04:05.5", "2024-01-02T03:04:05"], ["2024-01-02 25:00:00", "-infinity"]),
        (TIMESTAMPTZ, ["2024-01-02 03:04:05+00", "2024-01-02 05:04:05+02:00"], ["2024-01-02 03:04:05 +bogus"]),
        (DECIMAL, ["-12.34", "5", "0.50", "7.100"], ["NaN", "12.345", "1e3", "123456789012.00", ""]),
        (TIME, ["23:59:59.999999", "00:00:00"], ["24:00:00", "838:59:59"]),
    ],
)
def test_restore_parses_what_postgresql_prints_and_flags_the_rest(
    kind: str, good: list[str | None], bad: list[str]
) -> None:
    precision, scale = (12, 2) if kind == DECIMAL else (None, None)
    restored, mask = restore_column(pa.array(good + bad, pa.string()), ColumnRestore("c", kind, kind, precision, scale))
    assert mask.to_list() == [False] * len(good) + [True] * len(bad)
    assert restored.null_count == len(bad) + good.count(None)


def test_read_file_counts_bad_values_in_null_mode(local_root: str) -> None:
    rows = as_exported(orders_rows(0, 3))
    rows = rows.set_column(2, "created_at", pa.array(["2021-01-01", "nope", None]))
    uri = storage.join(local_root, "part-0.gz.parquet")
    write_parquet(uri, rows)
    reader = SnapshotReader(
        format="rds-parquet", table=ORDERS, columns=(ColumnRestore("created_at", "date", DATE),)
    )

    result = read_file(FileToRead(uri, None, 3), reader, "null")

    assert result.n_bad_value == 1
    assert result.table["created_at"].type == pa.date32()
    with pytest.raises(SnapshotError, match=r"column 'created_at' \(date\), file .*part-0.gz.parquet: 'nope'"):
        read_file(FileToRead(uri, None, 3), reader, "error")


@pytest.mark.parametrize(
    ("target", "folders"),
    [
        ("mydb.public.orders", ("mydb/public.orders", "mydb/mydb.public.orders")),
        ("mydb.orders", ("mydb/mydb.orders",)),
        ('mydb.public.my "big" table', ("mydb/public.my__big__table", "mydb/mydb.public.my__big__table")),
    ],
)
def test_expected_folders(target: str, folders: tuple[str, ...]) -> None:
    assert rds_export.expected_folders(target) == folders


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("Mar 1, 2024 4:05:06 AM", "2024-03-01T04:05:06Z"),
        ("Mar 1, 2024 4:05:06 PM", "2024-03-01T16:05:06Z"),
        ("2024-03-01T06:05:06+02:00", "2024-03-01T04:05:06Z"),
        ("2024-03-01T04:05:06Z", "2024-03-01T04:05:06Z"),
        (1709265906000, "2024-03-01T04:05:06Z"),
        ("yesterday", None),
    ],
)
def test_snapshot_time_forms(value: object, iso: str | None) -> None:
    assert rds_export.iso_utc(value) == iso
