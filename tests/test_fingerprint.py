"""The row fingerprint: equal for the same rows however they are stored, different for other rows."""

from __future__ import annotations

import datetime
import decimal
import io

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dbsnaplake.frames.fingerprint import ALGORITHM, combine, fingerprint
from dbsnaplake.frames.schema import conform


def rows() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 3, 4], pa.int32()),
            "amount": pa.array([1.5, None, float("nan"), 2.0]),
            "name": pa.array(["a", None, "ccc", ""]),
            "blob": pa.array([b"x", b"", None, b"\0"]),
            "price": pa.array(
                [decimal.Decimal("1.50"), None, decimal.Decimal("100"), decimal.Decimal("-0.10")], pa.decimal128(10, 2)
            ),
            "at": pa.array(
                [datetime.datetime(2024, 1, 1), None, datetime.datetime(2024, 1, 2, 3), None], pa.timestamp("us")
            ),
            "day": pa.array([datetime.date(2024, 1, 1), None, datetime.date(2024, 1, 2), datetime.date(1970, 1, 1)]),
            "address": pa.array(
                [{"city": "Lyon", "zip": 69001}, None, {"city": None, "zip": 1}, {"city": "Oslo", "zip": None}]
            ),
            "tags": pa.array([[1, 2], [], None, [None, 3]]),
            "items": pa.array([[{"sku": "a"}], None, [], [{"sku": None}, {"sku": "z"}]]),
            "attributes": pa.array([[("a", 1)], None, [], [("b", 2)]], pa.map_(pa.string(), pa.int64())),
        }
    )


def through_parquet(table: pa.Table, **options: object) -> pa.Table:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)  # type: ignore[arg-type]
    return pq.read_table(io.BytesIO(buffer.getvalue()))


def with_column(table: pa.Table, name: str, column: pa.Array | pa.ChunkedArray) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, column)


def test_the_same_rows_stored_differently_have_one_fingerprint() -> None:
    table = rows()
    expected = fingerprint(table)
    same = [
        through_parquet(table),
        through_parquet(table, use_dictionary=True, row_group_size=1),
        table.take([3, 1, 0, 2]),
        table.select(list(reversed(table.column_names))),
        pa.concat_tables([table.slice(0, 1), table.slice(1)]),
        with_column(table, "name", table["name"].dictionary_encode()),
        with_column(table, "name", table["name"].cast(pa.large_string())),
        with_column(table, "name", table["name"].cast(pa.string_view())),
        with_column(table, "blob", table["blob"].cast(pa.large_binary())),
        with_column(table, "tags", table["tags"].cast(pa.large_list(pa.int64()))),
        with_column(table, "at", table["at"].cast(pa.timestamp("ns"))),
        with_column(table, "day", table["day"].cast(pa.date64())),
    ]
    assert [fingerprint(t) for t in same] == [expected] * len(same)
    assert combine([fingerprint(table.slice(0, 2)), fingerprint(table.slice(2))]) == expected


def test_conforming_to_a_wider_lake_schema_keeps_the_fingerprint() -> None:
    """Compaction conforms each ETL group's rows to the unified schema: widened numbers, null-filled columns."""
    table = rows()
    lake_schema = pa.schema(
        [
            pa.field("id", pa.float64()),
            pa.field("price", pa.decimal128(14, 4)),
            pa.field("address", pa.struct([("city", pa.string()), ("zip", pa.int64()), ("country", pa.string())])),
            pa.field("added_later", pa.string()),
            *[f for f in table.schema if f.name not in ("id", "price", "address")],
        ]
    )
    assert fingerprint(conform(table, lake_schema, "test")) == fingerprint(table)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: with_column(t, "name", pa.array(["a", None, "ccd", ""])),
        lambda t: with_column(t, "id", pa.array([1, 2, 3, 5], pa.int32())),
        lambda t: with_column(t, "amount", pa.array([1.5, 0.0, float("nan"), 2.0])),
        lambda t: with_column(t, "tags", pa.array([[2, 1], [], None, [None, 3]])),
        lambda t: with_column(t, "tags", pa.array([[1, 2], None, None, [None, 3]])),
        lambda t: t.rename_columns(["id", "amount", "blob", "name", *t.column_names[4:]]),
        lambda t: pa.concat_tables([t, t.slice(0, 1)]),
        lambda t: pa.concat_tables([t.slice(0, 3), t.slice(0, 1)]),
        lambda t: t.slice(1),
    ],
    ids=["string", "int", "null-to-value", "list-order", "empty-to-null-list", "swapped-columns", "extra-row",
         "duplicate-replaces-row", "missing-row"],
)  # fmt: skip
def test_other_rows_have_another_fingerprint(change: object) -> None:
    table = rows()
    assert callable(change)
    assert fingerprint(change(table)) != fingerprint(table)


def test_values_swapped_between_rows_change_the_fingerprint() -> None:
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    assert fingerprint(pa.table({"a": [1, 2], "b": ["y", "x"]})) != fingerprint(table)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), st.text(max_size=5)), max_size=30))
def test_any_order_of_rows_gives_the_same_fingerprint(values: list[tuple[int | None, str]]) -> None:
    table = pa.table({"n": pa.array([v[0] for v in values], pa.int64()), "s": [v[1] for v in values]})
    assert fingerprint(table.take(pa.array(reversed(range(table.num_rows)), pa.int64()))) == fingerprint(table)
    assert fingerprint(through_parquet(table)) == fingerprint(table)


def test_the_algorithm_is_named_with_the_polars_version_and_the_processor() -> None:
    import platform

    import polars

    assert ALGORITHM.endswith(f"polars-{polars.__version__}+{platform.machine()}")


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "", None, "a/b", "é"]), st.one_of(st.none(), st.integers(-5, 5))),
        max_size=60,
    ),
    st.sampled_from([("k",), ("k", "v")]),
)
@example([("a", 1)] * 5, ("k",))  # one partition: found by comparing, no grouping
@example([("a", 1)] * 5, ("k", "v"))
@example([(None, None)] * 3, ("k", "v"))
@example([("", 1), (None, 1)], ("k",))  # "" and null: one folder, two values
@example([("a", 1), ("a", 2)], ("k", "v"))
def test_a_chunk_split_by_partition_keeps_every_row_and_its_fingerprint(
    rows: list[tuple[str | None, int | None]], keys: tuple[str, ...]
) -> None:
    """ETL splits a chunk once: each partition's rows, in order, and its fingerprint (from the chunk's row hashes)
    are those of the rows whose key makes its Hive path ("" and null are one folder)."""
    import polars as pl

    from dbsnaplake.frames.fingerprint import row_hashes
    from dbsnaplake.frames.partitioning import partition_path
    from dbsnaplake.stages.etl import partition_fingerprints, split_partitions

    frame = pl.DataFrame({"k": [k for k, _ in rows], "v": [v for _, v in rows]}, schema={"k": pl.Utf8, "v": pl.Int64})
    split = split_partitions(frame, keys)
    table = frame.to_arrow()
    ordered = table if split.order is None else table.take(split.order)
    hashes = row_hashes(ordered)
    sums = partition_fingerprints(hashes, split.starts)
    paths = [partition_path(list(keys), list(row)[: len(keys)]) for row in rows]
    assert split.paths == sorted(set(paths))
    for path, start, end, total in zip(split.paths, split.starts[:-1], split.starts[1:], sums, strict=True):
        expected = [i for i, row_path in enumerate(paths) if row_path == path]
        part = ordered.slice(start, end - start)
        assert part.to_pylist() == table.take(expected).to_pylist()  # the partition's rows, in their order
        assert total == fingerprint(part)
    assert split.starts[-1] == len(rows)


@pytest.mark.parametrize("decoder", ["pyarrow", "polars"])
@pytest.mark.parametrize("n_files", [1, 3, 40])
def test_a_chunk_of_many_small_files_is_one_contiguous_chunk_of_their_rows_in_order(n_files: int, decoder: str) -> None:
    """ETL copies the pieces of many small files into one chunk (each later step pays per chunk); the rows, their
    order, their fingerprint and the files they are named by stay, whichever decoder read the files."""
    from dbsnaplake.frames.polars_reader import PolarsRead
    from dbsnaplake.frames.readers import ReadResult
    from dbsnaplake.stages.etl import MAX_CHUNK_PIECES, Chunk

    chunk = Chunk()
    pieces = [pa.table({"id": pa.array([3 * i, 3 * i + 1], pa.int64()), "s": [f"f{i}", None]}) for i in range(n_files)]
    reads = [
        ReadResult(piece) if decoder == "pyarrow" else PolarsRead(pl.DataFrame(pl.from_arrow(piece)), piece.schema)
        for piece in pieces
    ]
    for i, read in enumerate(reads):
        assert chunk.fits(read)
        chunk.add(read, f"file-{i}.parquet")
    frame, schema = chunk.rows()
    assert schema == pieces[0].schema
    assert frame.to_arrow().to_pylist() == pa.concat_tables(pieces).to_pylist()
    assert fingerprint(frame.to_arrow()) == fingerprint(pa.concat_tables(pieces))
    assert frame.n_chunks() == (1 if n_files > MAX_CHUNK_PIECES else n_files)
    assert chunk.nbytes == sum(read.nbytes for read in reads)
    after = f" or one of the {n_files - 1} files after it" if n_files > 1 else ""
    assert chunk.where == f"file-0.parquet{after}"
    other = PolarsRead(pl.DataFrame(pl.from_arrow(pieces[0])), pieces[0].schema) if decoder == "pyarrow" else None
    assert not chunk.fits(other or ReadResult(pieces[0]))  # one decoder's reads in a chunk


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "é", "日本", "a\x00b"])), max_size=40),
    null_in_dictionary=st.booleans(),
)
def test_a_dictionary_encoded_column_hashes_as_its_decoded_values(
    values: list[str | None], null_in_dictionary: bool
) -> None:
    """Dictionaries are hashed a distinct value at a time, then gathered: the same hashes as every value decoded,
    with null indices, a null in the dictionary itself, an empty dictionary, inside a struct, and read back from
    Parquet as dictionaries (as validation reads the lake's dictionary-encoded columns)."""
    from dbsnaplake.frames.readers import dictionary_encoded_columns

    plain = pa.array(values, pa.string())
    distinct = sorted({v for v in values if v is not None})
    dictionary = pa.array([None, *distinct] if null_in_dictionary else distinct, pa.string())
    position = {v: i for i, v in enumerate(dictionary.to_pylist())}
    indices = pa.array([None if v is None else position[v] for v in values], pa.int32())
    encoded = pa.DictionaryArray.from_arrays(indices, dictionary)
    if null_in_dictionary:  # a null value may also be a valid index to the dictionary's null
        encoded = pa.DictionaryArray.from_arrays(
            pa.array([0 if v is None else position[v] for v in values], pa.int32()), dictionary
        )
    expected = fingerprint(pa.table({"s": plain, "n": pa.array(range(len(values)))}))
    assert fingerprint(pa.table({"s": encoded, "n": pa.array(range(len(values)))})) == expected
    nested = fingerprint(pa.table({"t": pa.StructArray.from_arrays([plain], ["s"])}))
    assert fingerprint(pa.table({"t": pa.StructArray.from_arrays([encoded], ["s"])})) == nested

    buffer = io.BytesIO()
    pq.write_table(pa.table({"s": plain, "n": pa.array(range(len(values)))}), buffer, use_dictionary=["s"])
    metadata = pq.read_metadata(io.BytesIO(buffer.getvalue()))
    columns = dictionary_encoded_columns(metadata)
    assert columns == ["s"]  # "n" is not text
    back = pq.read_table(io.BytesIO(buffer.getvalue()), read_dictionary=columns)
    assert fingerprint(back) == expected


def test_rows_hashed_together_hash_as_rows_hashed_one_by_one() -> None:
    """Every row's hash is the one it has alone, whatever the chunks and the dictionary-encoded columns."""
    import numpy as np

    from dbsnaplake.frames import fingerprint as module

    table = pa.concat_tables([rows()] * 5)  # 20 rows in 5 chunks
    table = with_column(table, "name", table["name"].combine_chunks().dictionary_encode())
    one_by_one = [int(module.row_hashes(table.slice(i, 1))[0]) for i in range(table.num_rows)]
    assert module.row_hashes(table).tolist() == one_by_one
    assert module.row_hashes(table.combine_chunks().to_batches()[0]).tolist() == one_by_one
    assert fingerprint(table) == int(np.array(one_by_one, np.uint64).sum(dtype=np.uint64))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(st.none(), st.text(max_size=8)), st.one_of(st.none(), st.text(max_size=3))), max_size=40)
)
def test_text_hashed_from_the_polars_frame_hashes_as_from_arrow(values: list[tuple[str | None, str | None]]) -> None:
    """ETL hands the transform's Polars frame along: its String columns hashed as they are give the hashes the
    same rows give from Arrow (the lake's read-back), nulls and empty strings included; other columns come from
    Arrow either way."""
    import polars as pl

    from dbsnaplake.frames import fingerprint as module

    table = pa.table(
        {
            "s": pa.array([v[0] for v in values], pa.string()),
            "t": pa.array([v[1] for v in values], pa.large_string()),
            "n": pa.array(range(len(values)), pa.int64()),
        }
    )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    assert module.row_hashes(table, frame).tolist() == module.row_hashes(table).tolist()
    categorical = frame.with_columns(pl.col("t").cast(pl.Categorical))  # not String: taken from Arrow
    assert module.row_hashes(table, categorical).tolist() == module.row_hashes(table).tolist()


def test_floats_hash_as_the_integers_they_equal_and_every_nan_alike() -> None:
    import numpy as np

    nans = np.array([0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000001, 0xFFF0000000000123], np.uint64)
    assert len({fingerprint(pa.table({"x": pa.array([nan])})) for nan in nans.view(np.float64)}) == 1
    for value in (0, -1, 3, 2**53, -(2**63)):
        as_float = fingerprint(pa.table({"x": pa.array([float(value)])}))
        assert as_float == fingerprint(pa.table({"x": pa.array([value], pa.int64())}))
    assert fingerprint(pa.table({"x": [-0.0]})) == fingerprint(pa.table({"x": [0.0]}))
    assert fingerprint(pa.table({"x": [0.5]})) != fingerprint(pa.table({"x": [0.0]}))
    assert fingerprint(pa.table({"x": [float("inf")]})) != fingerprint(pa.table({"x": [float("-inf")]}))
    assert fingerprint(pa.table({"x": [2.0**63]})) != fingerprint(pa.table({"x": pa.array([-(2**63)], pa.int64())}))


def test_a_polars_that_hashed_differently_names_another_algorithm(monkeypatch: pytest.MonkeyPatch) -> None:
    from dbsnaplake.frames import fingerprint as module

    today = module._sample_hashes()
    assert today in ALGORITHM
    monkeypatch.setattr(module, "_ROW_SEED", module._ROW_SEED + 1)  # as another build's hash would
    assert module._sample_hashes() != today
