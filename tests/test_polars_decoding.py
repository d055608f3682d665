"""Parquet decoded by Polars where that gives what pyarrow gives: ETL's snapshot files (into the frame the
transform takes) and validation's read-back (fingerprinted in one Polars select). Every Arrow type is drawn; the
types Polars is trusted with must decode and hash alike, the others must be left to pyarrow."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbsnaplake.frames import fingerprint
from dbsnaplake.frames.parquet_join import read_footer, row_group_file
from dbsnaplake.frames.polars_reader import decodes_alike, read_in_polars
from dbsnaplake.frames.types import converted_schema, for_polars
from dbsnaplake.stages import validate
from tests.support.arrow_tables import HOSTILE_NAMES, POLARS_DECODED, build_array, column_kinds

KINDS = column_kinds()
WRITER_OPTIONS = st.fixed_dictionaries(
    {
        "use_dictionary": st.booleans(),
        "compression": st.sampled_from(["snappy", "zstd", "none", "lz4"]),
        "data_page_version": st.sampled_from(["1.0", "2.0"]),
        "row_group_size": st.sampled_from([2, 3, 1000]),
        "store_schema": st.booleans(),
    }
)


@st.composite
def tables(draw: Any, plain_only: bool = False) -> pa.Table:
    kinds = [kind for kind in KINDS if str(kind.type) in POLARS_DECODED] if plain_only else KINDS
    chosen = draw(st.lists(st.sampled_from(range(len(kinds))), min_size=1, max_size=6, unique=True))
    names = draw(st.lists(st.sampled_from(HOSTILE_NAMES), min_size=len(chosen), max_size=len(chosen), unique=True))
    n_rows = draw(st.integers(0, 8))
    arrays = {}
    for name, index in zip(names, chosen, strict=True):
        kind = kinds[index]
        arrays[name] = build_array(kind, draw(st.lists(st.none() | kind.values, min_size=n_rows, max_size=n_rows)))
    return pa.table(arrays)


def written(table: pa.Table, options: dict[str, Any]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), options=WRITER_OPTIONS)
def test_polars_decodes_a_file_as_pyarrow_and_the_conversion_do_or_leaves_it_to_them(
    table: pa.Table, options: dict[str, Any]
) -> None:
    data = written(table, options)
    by_pyarrow = pq.ParquetFile(pa.BufferReader(data)).read()
    expected = pl.from_arrow(for_polars(by_pyarrow, "drawn"), rechunk=False)
    assert isinstance(expected, pl.DataFrame)
    decoded = read_in_polars(data)
    if all(str(t) in POLARS_DECODED for t in table.schema.types) and options["store_schema"]:
        assert decoded is not None, table.schema  # the types it is trusted with are decoded by it
    if decoded is None:
        return
    assert decoded.schema == by_pyarrow.schema
    assert decoded.frame.schema == expected.schema
    assert decoded.frame.equals(expected, null_equal=True)


@pytest.mark.parametrize(
    "table",
    [
        pa.table({"d": pa.array(["a", "b"]).dictionary_encode()}),
        pa.table({"s": pa.array([{"x": 1}])}),
        pa.table({"l": pa.array([[1, 2]])}),
        pa.table({"t": pa.array([1], pa.timestamp("us", "Europe/Paris"))}),
        pa.table({"n": pa.nulls(2)}),
        pa.table({"x": pa.array([1], pa.decimal128(5, 2))}),
        pa.table({"f": pa.array([b"abc"], pa.binary(3))}),
    ],
    ids=["dictionary", "struct", "list", "zone", "null", "decimal", "fixed-size binary"],
)
def test_types_polars_is_not_trusted_with_are_left_to_pyarrow(table: pa.Table) -> None:
    assert read_in_polars(written(table, {})) is None


def test_int96_timestamps_and_files_of_another_schema_are_left_to_pyarrow() -> None:
    table = pa.table({"t": pa.array([1], pa.timestamp("ns")), "n": pa.array([1], pa.int64())})
    int96 = written(table, {"use_deprecated_int96_timestamps": True})
    assert not decodes_alike(pq.ParquetFile(pa.BufferReader(int96)))
    plain = written(table, {})
    assert read_in_polars(plain) is not None
    assert read_in_polars(plain, expected=pa.schema([("t", pa.timestamp("ns")), ("n", pa.int32())])) is None
    assert read_in_polars(plain[:-20]) is None  # a file Polars cannot read: pyarrow's error is the one reported


@pytest.mark.parametrize("name", ["data[0].parquet", "data?.parquet", "data*.parquet", "year=2021/data0.parquet"])
def test_a_local_file_is_read_as_named_not_as_a_pattern_or_a_hive_folder(name: str, tmp_path: Path) -> None:
    """File names are the user's: brackets, ``?`` and ``*`` are characters (Polars would take them for a glob and
    read ``data0.parquet`` instead, the same schema and count), ``year=2021/`` is a folder (no column added)."""
    pq.write_table(pa.table({"x": pa.array([1, 2], pa.int64())}), tmp_path / "data0.parquet")
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    pq.write_table(pa.table({"x": pa.array([7, 8], pa.int64())}), path)
    decoded = read_in_polars(str(path))
    assert decoded is not None and decoded.frame.to_dict(as_series=False) == {"x": [7, 8]}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), options=WRITER_OPTIONS)
def test_a_frame_decoded_by_polars_has_the_fingerprint_of_its_arrow_rows(
    table: pa.Table, options: dict[str, Any]
) -> None:
    """What validation computes from a data-lake file read back by Polars is what ETL computed from the rows in
    Arrow, and each row's hash that ETL takes from its Polars frame is the one Arrow gives; a type Polars is not
    trusted with is hashed from Arrow."""
    data = written(table, options)
    rows = pq.ParquetFile(pa.BufferReader(data)).read()
    frame = pl.read_parquet(data)
    assert fingerprint.row_hashes(rows, frame).tolist() == fingerprint.row_hashes(rows).tolist()
    plain = all(str(t) in POLARS_DECODED for t in table.schema.types)
    if not fingerprint.hashes_in_polars(rows.schema) or frame.schema != converted_schema(rows.schema):
        assert not plain  # left to pyarrow (a date64 column: a date in pyarrow, a datetime in Polars)
        return
    assert fingerprint.frame_fingerprint(frame) == fingerprint.fingerprint(rows)
    assert fingerprint.frame_row_hashes(frame).tolist() == fingerprint.row_hashes(rows).tolist()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(table=tables(), options=WRITER_OPTIONS)
def test_a_data_lake_file_read_back_gives_its_rows_count_and_fingerprint_either_way(
    table: pa.Table, options: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "part-00000.parquet"
    path.write_bytes(written(table, options))
    rows = pq.read_table(path)
    back = validate.read_back(str(path), path.stat().st_size)
    assert back == validate.ReadBack(rows.num_rows, fingerprint.fingerprint(rows))
    with path.open("rb") as f:
        assert validate._read_back_in_arrow(f, str(path)) == back


def test_each_row_group_becomes_a_file_of_its_own_rows(tmp_path: Path) -> None:
    table = pa.table({"id": pa.array(range(10), pa.int64()), "s": [f"v{i % 3}" for i in range(10)]})
    path = tmp_path / "groups.parquet"
    pq.write_table(table, path, row_group_size=4)
    footer = read_footer(str(path), path.stat().st_size)
    data = path.read_bytes()
    assert footer.row_groups is not None
    pieces = []
    for group in footer.row_groups:
        alone = pq.read_table(
            pa.BufferReader(row_group_file(footer, group, data[group.start : group.start + group.length]))
        )
        assert alone.num_rows == group.n_record
        pieces.append(alone)
    assert pa.concat_tables(pieces).equals(table)


def test_a_file_polars_refuses_is_read_back_by_pyarrow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64())})
    path = tmp_path / "part.parquet"
    pq.write_table(table, path)

    def refuse(*args: object, **kwargs: object) -> pl.DataFrame:
        raise pl.exceptions.ComputeError("refused")

    monkeypatch.setattr(pl, "read_parquet", refuse)
    assert validate.read_back(str(path), path.stat().st_size) == validate.ReadBack(3, fingerprint.fingerprint(table))


def test_a_truncated_data_lake_file_is_a_problem_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"id": pa.array(range(1000), pa.int64())}), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    back = validate.read_back(str(path), path.stat().st_size)
    assert back.error is not None and str(path) in back.error and "--fresh" in back.error
