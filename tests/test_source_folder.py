"""A folder of data files as a snapshot source: mixed formats, CSV options, the source dispatcher's errors."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta

import polars as pl
import pyarrow as pa
import pytest

from dbsnaplake import storage
from dbsnaplake.api import (
    ConfigError,
    FolderOptions,
    SnapshotError,
    SourceRunConfig,
    build_manifest,
    detect_source,
    read_manifest,
    run_source,
    write_source_manifests,
)
from dbsnaplake.config.settings import parse_column_types
from dbsnaplake.frames.readers import csv_format, parse_type, sniff_delimiter
from dbsnaplake.frames.transform import apply_transform
from dbsnaplake.records import CsvOptions
from dbsnaplake.sources.folder import first_row_is_header, table_name

from .support.cli import dbsnaplake
from .support.lake import read_lake, same_rows
from .support.snapshots import YEAR_MONTH, write_parquet

ROWS_PER_FILE = 40


def orders(first: int, n: int = ROWS_PER_FILE) -> pa.Table:
    start = datetime(2023, 11, 20, 8, 0, 0)
    return pa.table(
        {
            "order_id": pa.array(range(first, first + n), pa.int64()),
            "customer": [f"customer {i % 7}" for i in range(first, first + n)],
            "amount": [round(i * 1.37 + 0.01, 2) for i in range(first, first + n)],
            "order_time": pa.array(
                [start + timedelta(hours=13 * i) for i in range(first, first + n)], pa.timestamp("us")
            ),
        }
    )


def csv_text(table: pa.Table, delimiter: str = ",", header: bool = True) -> bytes:
    lines = [delimiter.join(table.column_names)] if header else []
    for row in table.to_pylist():
        values = [v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else str(v) for v in row.values()]
        lines.append(delimiter.join(values))
    return ("\n".join(lines) + "\n").encode()


def json_rows(table: pa.Table) -> list[dict[str, object]]:
    return [
        {k: v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else v for k, v in row.items()}
        for row in table.to_pylist()
    ]


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return bytes(sink.getvalue())


def write_mixed_folder(root: str) -> tuple[str, pa.Table]:
    """``<root>/exports/shop/orders/``: one Parquet, a .csv.gz, an .ndjson.zst, a JSON array, a ;-separated CSV and
    a ``_SUCCESS`` marker; returns the folder and every row."""
    folder = storage.join(root, "exports", "shop", "orders")
    parts = [orders(i * ROWS_PER_FILE) for i in range(5)]
    write_parquet(storage.join(folder, "part-0.parquet"), parts[0])
    storage.write_bytes(storage.join(folder, "part-1.csv.gz"), gzip.compress(csv_text(parts[1])))
    ndjson = "\n".join(json.dumps(row) for row in json_rows(parts[2])).encode()
    storage.write_bytes(storage.join(folder, "2024", "part-2.ndjson.zst"), zstd(ndjson))
    storage.write_bytes(storage.join(folder, "2024", "part-3.json"), b"  \n" + json.dumps(json_rows(parts[3])).encode())
    storage.write_bytes(storage.join(folder, "part-4.csv"), csv_text(parts[4], delimiter=";"))
    storage.write_bytes(storage.join(folder, "_SUCCESS"), b"")
    return folder, pa.concat_tables(parts)


def expected(table: pa.Table, transform: str | None = YEAR_MONTH) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return apply_transform(transform, frame)


def roots(root: str) -> tuple[str, str]:
    return storage.join(root, "staging", "shop", "orders"), storage.join(root, "datalake", "shop", "orders")


def test_mixed_formats_end_to_end(root: str) -> None:
    folder, rows = write_mixed_folder(root)
    staging, datalake = roots(root)
    config = SourceRunConfig(
        source=folder,
        staging=staging,
        datalake=datalake,
        workers=2,
        table_overrides={"partition_by": ("year", "month"), "transform": YEAR_MONTH},
    )

    result = run_source(config)

    assert result.ok, result
    [table] = result.source.tables
    assert (table.name, table.n_file, table.n_record) == ("shop.orders", 5, 5 * ROWS_PER_FILE)
    assert any("4 text files were read" in note for note in result.source.notes)
    [run] = result.runs
    assert run.result is not None and run.result.validation.datalake.records == 5 * ROWS_PER_FILE
    manifest = read_manifest(table.manifest_uri)
    assert manifest.summary_uri == storage.join(staging, "manifests", "manifest-summary.json")
    assert manifest.snapshot_details.reader is None  # nothing to say beyond what each file's name and first line tell
    same_rows(read_lake(run.config), expected(rows), key="order_id")


def test_text_counts_left_to_the_etl_stage(local_root: str) -> None:
    folder, rows = write_mixed_folder(local_root)
    staging, datalake = roots(local_root)
    config = SourceRunConfig(
        source=folder, staging=staging, datalake=datalake, workers=1, count_text_records=False
    )

    result = run_source(config)

    [table] = result.source.tables
    assert table.n_record is None
    assert any("left unknown" in note for note in result.source.notes)
    [run] = result.runs
    assert run.result is not None
    validation = run.result.validation
    assert not validation.snapshot_records_known
    assert validation.etl_records_in == validation.datalake.records == rows.num_rows
    assert f"{rows.num_rows:,} records" in str(run.result)
    same_rows(read_lake(run.config), expected(rows, None), key="order_id")


def test_csv_options_delimiter_no_header_names_and_types(local_root: str) -> None:
    folder = storage.join(local_root, "exports", "shop", "prices")
    table = pa.table({"id": [1, 2, 3], "price": ["12.50", "0.99", "1000.00"], "label": ["a", "b", "c"]})
    storage.write_bytes(storage.join(folder, "prices.csv"), csv_text(table, delimiter="|", header=False))
    staging, datalake = roots(local_root)
    config = SourceRunConfig(
        source=folder,
        staging=staging,
        datalake=datalake,
        workers=1,
        table_name="shop.price_list",
        csv_delimiter="|",
        csv_header=False,
        csv_column_names=("id", "price", "label"),
        csv_column_types=parse_column_types("id=int64, price=decimal(12,2)"),
    )

    result = run_source(config)

    [run] = result.runs
    assert run.name == "shop.price_list" and run.result is not None
    manifest = read_manifest(result.source.tables[0].manifest_uri)
    reader = manifest.snapshot_details.reader
    assert reader is not None and reader.csv is not None
    assert reader.csv.column_types == (("id", "int64"), ("price", "decimal(12,2)"))
    lake = read_lake(run.config).sort("id")
    assert lake.schema["price"] == pl.Decimal(12, 2)
    assert [str(v) for v in lake["price"]] == ["12.50", "0.99", "1000.00"]


def test_header_is_inferred_from_the_first_row(local_root: str) -> None:
    folder = storage.join(local_root, "snapshot")
    storage.write_bytes(storage.join(folder, "a.csv"), b"1,alice,2024-01-01\n2,bob,2024-01-02\n")
    out = storage.join(local_root, "manifests", "manifest-summary.json")

    result = write_source_manifests(folder, out)

    assert result.tables[0].n_record == 2
    assert any("without a header row" in note for note in result.notes)
    reader = read_manifest(out).snapshot_details.reader
    assert reader is not None and reader.csv is not None and reader.csv.header is False


def test_csv_column_types_must_name_existing_columns(local_root: str) -> None:
    folder = storage.join(local_root, "snapshot")
    storage.write_bytes(storage.join(folder, "a.csv"), b"id,name\n1,alice\n")
    options = FolderOptions(csv=CsvOptions(column_types=(("idd", "int64"),)))
    with pytest.raises(ConfigError, match=r"'idd'.*its columns: id, name"):
        write_source_manifests(folder, storage.join(local_root, "m.json"), folder_options=options)


@pytest.mark.parametrize(
    ("spelled", "expected"),
    [
        ("int64", pa.int64()),
        ("Double", pa.float64()),
        ("string", pa.string()),
        ("decimal(12,2)", pa.decimal128(12, 2)),
        ("numeric(40, 4)", pa.decimal256(40, 4)),
        ("timestamp[ms]", pa.timestamp("ms")),
        ("timestamp(us, UTC)", pa.timestamp("us", "UTC")),
        ("date", pa.date32()),
    ],
)
def test_type_spellings(spelled: str, expected: pa.DataType) -> None:
    assert parse_type(spelled) == expected


def test_bad_column_types_say_what_is_expected() -> None:
    with pytest.raises(ConfigError, match="unknown column type 'integer64'"):
        csv_format(CsvOptions(column_types=parse_column_types("id=integer64")))
    with pytest.raises(ConfigError, match="column=type"):
        parse_column_types("id")
    assert parse_column_types("a=decimal(12,2),b=timestamp[us, UTC]") == (
        ("a", "decimal(12,2)"),
        ("b", "timestamp[us, UTC]"),
    )


@pytest.mark.parametrize(
    ("first_line", "default", "delimiter"),
    [
        (b"a,b,c\n1,2,3", ",", ","),
        (b"a;b;c\n", ",", ";"),
        (b"a\tb\n", ",", "\t"),
        (b"a|b|c", ",", "|"),
        (b'"x;y",b,c\n', ",", ","),  # quoted delimiters do not count
        (b"single\n", "\t", "\t"),
    ],
)
def test_delimiter_sniffing(first_line: bytes, default: str, delimiter: str) -> None:
    assert sniff_delimiter(first_line, default) == delimiter


def test_header_detection() -> None:
    assert first_row_is_header(b"id,name,created\n1,a,2024-01-01\n", ",")
    assert not first_row_is_header(b"1,a,b\n", ",")
    assert not first_row_is_header(b"x;2024-01-01 10:00:00\n", ";")


def test_table_names_come_from_the_folders() -> None:
    assert table_name("s3://b/exports/shop/orders/", None) == ("shop", "orders")
    assert table_name("/data/shop/orders/snapshot=2024-01-01/", None) == ("shop", "orders")
    assert table_name("/data/shop/orders/", "sales.orders_2024") == ("sales", "orders_2024")
    assert table_name("/data/shop/orders/", "orders_2024") == ("shop", "orders_2024")


def test_build_manifest_still_writes_a_folder_manifest(local_root: str) -> None:
    folder, rows = write_mixed_folder(local_root)
    out = storage.join(local_root, "m", "manifest-summary.json")
    result = build_manifest(folder, out)
    assert result.manifest.n_record == rows.num_rows and result.n_read_for_counts == 4
    assert not any(u.endswith("_SUCCESS") for u in result.manifest.column("uri"))


def test_a_folder_of_unknown_files_says_what_was_looked_for(local_root: str) -> None:
    folder = storage.join(local_root, "export")
    storage.write_bytes(storage.join(folder, "notes.txt"), b"hello")
    storage.write_bytes(storage.join(folder, "dump.sql"), b"CREATE TABLE t ();")
    with pytest.raises(SnapshotError) as error:
        detect_source(folder)
    message = str(error.value)
    for expected_text in ("export_info_*.json", "AWSDynamoDB/<export id>/manifest-summary.json", ".parquet", ".jsonl"):
        assert expected_text in message
    assert "dump.sql" in message and "notes.txt" in message


def test_a_stray_file_beside_data_files_is_named(local_root: str) -> None:
    folder = storage.join(local_root, "snapshot")
    write_parquet(storage.join(folder, "a.parquet"), orders(0))
    storage.write_bytes(storage.join(folder, "README.md"), b"# hi")
    with pytest.raises(SnapshotError, match=r"README\.md.*move them out"):
        write_source_manifests(folder, storage.join(local_root, "m.json"))


def test_nothing_there(local_root: str) -> None:
    with pytest.raises(SnapshotError, match="nothing found under"):
        detect_source(storage.join(local_root, "missing"))


def test_json_array_of_non_objects_is_refused(local_root: str) -> None:
    folder = storage.join(local_root, "snapshot")
    storage.write_bytes(storage.join(folder, "a.json"), b"[1, 2, 3]")
    with pytest.raises(SnapshotError, match="items are not all objects"):
        write_source_manifests(folder, storage.join(local_root, "m.json"))


# ---- through the command line -----------------------------------------------------------------------------


def test_cli_run_source(local_root: str) -> None:
    folder, rows = write_mixed_folder(local_root)
    staging, datalake = roots(local_root)
    result = dbsnaplake(
        "run", "--source", folder, "--staging", staging, "--datalake", datalake,
        "--partition-by", "year,month", "--transform", YEAR_MONTH, "--workers", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{rows.num_rows:,} records" in result.stdout
    assert "validation: OK" in result.stdout and "1 of 1 OK" in result.stdout
    assert storage.exists(storage.join(staging, "manifests", "manifest-summary.json"))


def test_cli_csv_options(local_root: str) -> None:
    folder = storage.join(local_root, "exports", "shop", "prices")
    table = pa.table({"id": [1, 2], "price": ["12.50", "0.99"]})
    storage.write_bytes(storage.join(folder, "prices.csv.gz"), gzip.compress(csv_text(table, ";", header=False)))
    out = storage.join(local_root, "m", "manifest-summary.json")
    result = dbsnaplake(
        "manifest", "build", folder, "--out", out, "--csv-delimiter", ";", "--csv-no-header",
        "--csv-column-names", "id,price", "--csv-column-types", "id=int64,price=decimal(12,2)",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 records" in result.stdout
    reader = read_manifest(out).snapshot_details.reader
    assert reader is not None
    assert reader.csv == CsvOptions(
        delimiter=";", header=False, column_names=("id", "price"), column_types=(("id", "int64"), ("price", "decimal(12,2)"))
    )


def test_cli_manifest_and_source_are_exclusive(local_root: str) -> None:
    folder, _ = write_mixed_folder(local_root)
    staging, datalake = roots(local_root)
    result = dbsnaplake("run", "--source", folder, "--manifest", "m.json", "--staging", staging, "--datalake", datalake)
    assert result.returncode == 1
    assert "--manifest and --source/--config are mutually exclusive" in result.stderr


def test_cli_unknown_source_shape(local_root: str) -> None:
    folder = storage.join(local_root, "export")
    storage.write_bytes(storage.join(folder, "notes.txt"), b"hello")
    result = dbsnaplake("manifest", "build", folder, "--out", storage.join(local_root, "m.json"))
    assert result.returncode == 1
    assert "Looked for" in result.stderr and "notes.txt" in result.stderr
