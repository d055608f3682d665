"""Every Arrow type reaches the lake as the documented mapping says (dbsnaplake.frames.types), or is refused with a
one-line error; sorting works for every sortable type. A property test runs random schemas through the pipeline;
the other tests each replay one failure users met, from the command line."""

from __future__ import annotations

import decimal
import io
import uuid
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig, S3Location, SortKey, build_manifest, parse_partition_path, run_pipeline
from dbsnaplake.frames.sorting import is_sorted
from dbsnaplake.frames.types import lake_type
from dbsnaplake.stages import etl

from .support.arrow_tables import SnapshotCase, column_kinds, snapshot_cases
from .support.cli import dbsnaplake
from .support.snapshots import S3_BUCKET, write_parquet


def documented_type(t: pa.DataType, keep_nanoseconds: bool = False) -> pa.DataType:
    """The README's table, spelled out again (for the types the generators make)."""
    if pa.types.is_dictionary(t):
        return documented_type(t.value_type)
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_time32(t) and t.unit == "s":
        return pa.time32("ms")
    if pa.types.is_timestamp(t) and t.unit == "s":
        return pa.timestamp("ms", t.tz)
    if pa.types.is_timestamp(t) and t.unit == "ns" and not keep_nanoseconds:
        return pa.timestamp("us", t.tz)
    return t


# ---- the rules ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", column_kinds(), ids=lambda kind: str(kind.type))
def test_a_lake_type_is_what_parquet_readers_read_back(kind: object, tmp_path: Path) -> None:
    source = kind.type  # type: ignore[attr-defined]
    wanted = lake_type(source)
    assert wanted == documented_type(source)
    path = tmp_path / "one.parquet"
    pq.write_table(pa.table({"x": pa.nulls(2, wanted)}), path)
    assert pq.read_table(path).schema.field("x").type == wanted
    assert pl.read_parquet(path).height == 2
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall() == [(2,)]


# ---- random schemas through the pipeline ---------------------------------------------------------------------


def comparable(table: pa.Table) -> pa.Table:
    """Times, timestamps and durations as their integers: Python's datetime has no nanoseconds."""
    for index, f in enumerate(table.schema):
        if pa.types.is_temporal(f.type) and not pa.types.is_date(f.type):
            integers = pa.int32() if pa.types.is_time32(f.type) else pa.int64()
            table = table.set_column(index, f.name, table.column(index).cast(integers))
    return table


def run_case(case: SnapshotCase, root: str) -> None:
    folder = storage.join(root, "snapshot")
    for index, table in enumerate(case.files):
        write_parquet(storage.join(folder, f"part-{index}.parquet"), table)
    manifest = storage.join(root, "manifest-summary.json")
    build_manifest(folder, manifest)
    config = PipelineConfig(
        location=S3Location(s3uri_staging=storage.join(root, "staging"), s3uri_datalake=storage.join(root, "lake")),
        snapshot_manifest=manifest,
        partition_by=(case.partition_by,) if case.partition_by else (),
        sort_by=tuple(SortKey(c) for c in case.sort_by),
        group_size=case.group_size,
        workers=1,
    )
    run_pipeline(config)
    lake_root = storage.as_dir(config.location.s3dir_datalake)
    source = pa.concat_tables(case.files)
    data_names = [n for n in source.column_names if n != case.partition_by]
    wanted_types = {n: documented_type(source.schema.field(n).type) for n in data_names}
    lake_rows: list[str] = []
    for info in storage.list_files(lake_root):
        if not info.uri.endswith(".parquet"):
            continue
        table = pq.read_table(io.BytesIO(storage.read_bytes(info.uri)))
        assert {f.name: f.type for f in table.schema} == wanted_types
        assert is_sorted(table, config.sort_by)
        relative = info.uri[len(lake_root) :]
        part = parse_partition_path(relative.rsplit("/", 1)[0]) if "/" in relative else {}
        for row in comparable(table.select(data_names)).to_pylist():
            lake_rows.append(repr([*row.values(), *part.values()]))
    expected = source.select(data_names).cast(pa.schema([(n, wanted_types[n]) for n in data_names]))
    partition_values = source[case.partition_by].to_pylist() if case.partition_by else None
    expected_rows = []
    for index, row in enumerate(comparable(expected).to_pylist()):
        parts = [partition_values[index] or None] if partition_values is not None else []  # "" and null: one folder
        expected_rows.append(repr([*row.values(), *parts]))
    assert sorted(lake_rows) == sorted(expected_rows)


def case_settings(examples: int) -> settings:
    """Derandomized (the same cases on every machine), few examples: each runs the whole pipeline."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


@pytest.fixture
def polars_decodes_every_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """ETL decodes snapshot files of any size with Polars where it decodes them alike (files from 256 KiB only, by
    default)."""
    monkeypatch.setattr(etl, "POLARS_MIN_FILE_BYTES", 0)


@case_settings(30)
@given(case=snapshot_cases())
def test_random_schemas_reach_a_local_lake_as_documented(case: SnapshotCase, tmp_path: Path) -> None:
    run_case(case, str(tmp_path / uuid.uuid4().hex[:10]))


@case_settings(30)
@given(case=snapshot_cases(polars_decoded_only=True))
def test_random_schemas_decoded_by_polars_reach_a_local_lake_as_documented(
    case: SnapshotCase, tmp_path: Path, polars_decodes_every_file: None
) -> None:
    run_case(case, str(tmp_path / uuid.uuid4().hex[:10]))


@pytest.mark.slow
@case_settings(8)
@given(case=snapshot_cases())
def test_random_schemas_reach_an_s3_lake_as_documented(
    case: SnapshotCase, s3_server: str, polars_decodes_every_file: None
) -> None:
    run_case(case, f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:10]}")


# ---- each failure users met, from the command line -----------------------------------------------------------


def run_folder(root: Path, files: dict[str, pa.Table | bytes], *options: str) -> tuple[int, str, pa.Table | None]:
    """Write ``files`` into a snapshot folder and run ``dbsnaplake run --source`` on it: (exit code, the table's
    one-line error or the last line of stderr, the lake's rows or None)."""
    folder = root / "src" / "db" / "t"
    folder.mkdir(parents=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            pq.write_table(content, folder / name)
    lake = root / "lake"
    result = dbsnaplake(
        "run", "--source", str(folder), "--staging", str(root / "staging"), "--datalake", str(lake),
        "--executor", "inline", "--workers", "1", *options,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines() or [""]
    report = result.stdout.splitlines()
    failed = [line.split(":", 1)[1] for line in report if line.startswith("FAILED ")]  # a table's one-line error
    message = failed[0] if failed else lines[-1]
    paths = sorted(lake.rglob("*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in paths]) if paths else None
    if result.returncode == 1:
        assert lines[-1].startswith("error:") and "Traceback" not in result.stderr, result.stderr
        assert table is None, "a data lake was left behind"
    return result.returncode, " ".join(message.split()), table


def two_files(table: pa.Table) -> dict[str, pa.Table | bytes]:
    return {"a.parquet": table, "b.parquet": table}


def test_an_all_null_column_keeps_its_null_type(tmp_path: Path) -> None:
    table = pa.table({"id": [1, 2, 3], "nothing": pa.nulls(3)})
    code, message, lake = run_folder(tmp_path, two_files(table), "--sort-by", "id")
    assert code == 0, message
    assert lake is not None and lake.schema.field("nothing").type == pa.null() and lake.num_rows == 6


def test_decimal256_within_38_digits_is_kept(tmp_path: Path) -> None:
    values = [decimal.Decimal("12345678901234567890.1234"), None, decimal.Decimal("-1.5")]
    table = pa.table({"amount": pa.array(values, pa.decimal256(24, 4))})
    code, message, lake = run_folder(tmp_path, two_files(table), "--sort-by", "amount")
    assert code == 0, message
    assert lake is not None and lake.schema.field("amount").type == pa.decimal256(24, 4)
    assert lake["amount"].to_pylist() == [*sorted(values[::2] * 2), None, None]


def test_decimal256_of_more_than_38_digits_is_refused_naming_the_column(tmp_path: Path) -> None:
    table = pa.table({"big": pa.array([decimal.Decimal(10**45)], pa.decimal256(50, 0))})
    code, message, _ = run_folder(tmp_path, {"a.parquet": table})
    assert code == 1
    assert "column 'big'" in message and "decimal256(50, 0)" in message and "a.parquet" in message


def test_nanosecond_timestamps_of_whole_microseconds_are_stored_in_microseconds(tmp_path: Path) -> None:
    table = pa.table({"at": pa.array([3_000, 1_000, None, 2_000], pa.timestamp("ns", "UTC"))})
    code, message, lake = run_folder(tmp_path, two_files(table), "--sort-by", "at")
    assert code == 0, message
    assert lake is not None and lake.schema.field("at").type == pa.timestamp("us", "UTC")
    assert lake["at"].cast(pa.int64()).to_pylist() == [1, 1, 2, 2, 3, 3, None, None]


def test_a_nanosecond_that_microseconds_cannot_hold_is_an_error_unless_kept(tmp_path: Path) -> None:
    table = pa.table({"at": pa.array([1_000, 1_001], pa.timestamp("ns"))})
    code, message, _ = run_folder(tmp_path / "default", {"a.parquet": table})
    assert code == 1
    assert "column 'at'" in message and "a.parquet" in message and "--keep-nanoseconds" in message
    code, message, lake = run_folder(tmp_path / "kept", {"a.parquet": table}, "--keep-nanoseconds")
    assert code == 0, message
    assert lake is not None and lake.schema.field("at").type == pa.timestamp("ns")
    assert lake["at"].cast(pa.int64()).to_pylist() == [1_000, 1_001]


def test_types_polars_lacks_come_back_as_the_source_had_them(tmp_path: Path) -> None:
    table = pa.table(
        {
            "s": pa.array(["a", ""], pa.string()),
            "b": pa.array([b"x", b""], pa.binary()),
            "f": pa.array([b"abcd", b"efgh"], pa.binary(4)),
            "l": pa.array([[1], []], pa.list_(pa.int16())),
            "t": pa.array([1, 86_399], pa.time32("s")),
            "d": pa.array([0, 86_400_000], pa.date64()),
            "tz": pa.array([0, 1], pa.timestamp("s", "Asia/Tokyo")),
        }
    )
    code, message, lake = run_folder(
        tmp_path, two_files(table), "--transform", "SELECT *, upper(s) AS big FROM snapshot"
    )
    assert code == 0, message
    assert lake is not None
    assert lake.schema == pa.schema(
        [*(f.with_type(documented_type(f.type)) for f in table.schema), pa.field("big", pa.string())]
    )
    assert (
        lake.select(table.column_names).to_pylist()
        == table.cast(lake.select(table.column_names).schema).to_pylist() * 2
    )


def test_ndjson_timestamps_with_a_zone_keep_utc(tmp_path: Path) -> None:
    text = b'{"id": 1, "at": "2024-05-01T10:00:00Z", "local": "2024-05-01 10:00:00"}\n' * 2
    code, message, lake = run_folder(tmp_path, {"a.ndjson": text})
    assert code == 0, message
    assert lake is not None
    assert lake.schema.field("at").type == pa.timestamp("ms", "UTC")
    assert lake.schema.field("local").type == pa.timestamp("ms")


def test_json_files_take_column_types_like_csv(tmp_path: Path) -> None:
    text = b'{"id": 1, "price": "12.50", "code": "007"}\n{"id": 2, "price": "0.10", "code": "010"}\n'
    code, message, lake = run_folder(
        tmp_path, {"a.ndjson": text}, "--column-types", "price=decimal(12,2),code=string,id=int16"
    )
    assert code == 0, message
    assert lake is not None
    assert lake.schema.field("price").type == pa.decimal128(12, 2)
    assert lake.schema.field("id").type == pa.int16()
    assert sorted(lake["code"].to_pylist()) == ["007", "010"]


def test_decimals_whose_union_needs_more_than_38_digits_are_a_conflict_naming_both_files(tmp_path: Path) -> None:
    files: dict[str, pa.Table | bytes] = {
        "a.parquet": pa.table({"d": pa.array([decimal.Decimal(1)], pa.decimal128(38, 0))}),
        "b.parquet": pa.table({"d": pa.array([decimal.Decimal("1.5")], pa.decimal128(38, 10))}),
    }
    code, message, _ = run_folder(tmp_path, files)
    assert code == 1
    assert "column 'd'" in message and "a.parquet" in message and "b.parquet" in message
    assert "decimal128(38, 0)" in message and "decimal128(38, 10)" in message


@pytest.mark.parametrize(
    "column",
    [
        pa.array([5, 1, None, 3], pa.timestamp("ns")),
        pa.array([5, 1, None, 3], pa.time64("ns")),
        pa.array([5, 1, None, 3], pa.time32("s")),
        pa.array([5, -1, None, 3], pa.duration("ns")),
        pa.array([decimal.Decimal(5), decimal.Decimal(-1), None, decimal.Decimal(3)], pa.decimal128(38, 0)),
    ],
    ids=lambda a: str(a.type),
)
def test_sort_by_any_orderable_type_with_two_files_in_a_group(tmp_path: Path, column: pa.Array) -> None:
    if pa.types.is_timestamp(column.type) or pa.types.is_time64(column.type):
        column = in_whole_microseconds(column)
    files: dict[str, pa.Table | bytes] = {
        "a.parquet": pa.table({"k": column, "n": [1, 2, 3, 4]}),
        "b.parquet": pa.table({"k": column.take([3, 2, 1, 0]), "n": [5, 6, 7, 8]}),
    }
    code, message, lake = run_folder(tmp_path, files, "--sort-by", "k:desc,n", "--group-size", "64MB")
    assert code == 0, message
    assert lake is not None and lake.num_rows == 8
    assert is_sorted(lake, (SortKey("k", descending=True), SortKey("n")))


def in_whole_microseconds(column: pa.Array) -> pa.Array:
    """A nanosecond column's values times 1000: whole microseconds, which the lake stores without an option."""
    integers = column.cast(pa.int64()).to_pylist()
    return pa.array([None if v is None else v * 1000 for v in integers]).cast(column.type)


@pytest.mark.parametrize(
    ("column", "type_name"),
    [
        (pa.array([{"a": 1}], pa.struct([("a", pa.int8())])), "struct<a: int8>"),
        (pa.array([[1]], pa.list_(pa.int8())), "list<"),
        (pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int8())), "map<string, int8>"),
    ],
    ids=["struct", "list", "map"],
)
def test_sort_by_a_column_without_an_order_is_refused_at_plan(tmp_path: Path, column: pa.Array, type_name: str) -> None:
    code, message, _ = run_folder(tmp_path, {"a.parquet": pa.table({"k": column})}, "--sort-by", "k")
    assert code == 1
    assert "--sort-by k" in message and type_name in message and "cannot be sorted" in message
    assert not (tmp_path / "staging" / "staging").exists(), "the ETL stage ran"


def test_sort_by_a_partition_column_is_refused(tmp_path: Path) -> None:
    table = pa.table({"year": ["2024", "2025"], "id": [1, 2]})
    code, message, _ = run_folder(tmp_path, {"a.parquet": table}, "--partition-by", "year", "--sort-by", "year,id")
    assert code == 1
    assert "--sort-by year is a --partition-by column" in message


def test_duplicate_column_names_in_one_parquet_file_name_the_file(tmp_path: Path) -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2]), pa.array(["x"])], names=["id", "id", "name"])
    code, message, _ = run_folder(tmp_path, {"dup.parquet": table})
    assert code == 1
    assert "dup.parquet" in message and "'id'" in message
