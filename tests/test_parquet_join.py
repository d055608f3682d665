"""Parquet files joined by copying their row groups: the footer codec gives back the bytes it read, joined files hold
exactly the rows of the row groups chosen (every Arrow type, nulls, dictionaries, nested columns) with their
statistics, and files are put in key order only when their statistics prove they do not overlap."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbsnaplake import storage
from dbsnaplake.errors import SnapshotError
from dbsnaplake.frames import thrift_compact as thrift
from dbsnaplake.frames.parquet_join import Footer, in_key_order, plan_files, read_footer, write_joined
from dbsnaplake.frames.thrift_compact import decode_struct, encode_struct
from dbsnaplake.records import SortKey

from .support.arrow_tables import build_array, column_kinds
from .support.typed_lake import EVERY_TYPE


def write(path: Path, table: pa.Table, **options: object) -> Footer:
    pq.write_table(table, path, **options)  # type: ignore[arg-type]
    return read_footer(str(path), path.stat().st_size)


def join_all(out: Path, footers: list[Footer]) -> pa.Table:
    pieces = [(footer, group) for footer in footers for group in footer.row_groups or ()]
    size = write_joined(out, pieces)
    assert size == out.stat().st_size
    return pq.read_table(out)


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "zstd"},
        {"compression": "snappy", "use_dictionary": False, "write_statistics": False},
        {"compression": "none", "write_page_index": True, "data_page_version": "2.0"},
        {"compression": "lz4", "row_group_size": 1, "store_schema": False},
    ],
)
def test_a_footer_decodes_and_encodes_to_its_own_bytes(tmp_path: Path, options: dict[str, object]) -> None:
    footer = write(tmp_path / "every.parquet", EVERY_TYPE, **options)

    assert encode_struct(decode_struct(footer.raw)) == footer.raw
    assert footer.arrow_schema() == pq.read_schema(tmp_path / "every.parquet")


def thrift_values(kind: int, depth: int) -> st.SearchStrategy[object]:
    """Values of one Thrift compact type as :mod:`thrift_compact` holds them."""
    scalars: dict[int, st.SearchStrategy[object]] = {
        thrift.TRUE: st.sampled_from([0, 1, 2]),  # a bool element of a list: its byte
        thrift.BYTE: st.integers(0, 255),
        thrift.I16: st.integers(-(2**15), 2**15 - 1),
        thrift.I32: st.integers(-(2**31), 2**31 - 1),
        thrift.I64: st.integers(-(2**63), 2**63 - 1),
        thrift.DOUBLE: st.floats(allow_nan=False),
        thrift.BINARY: st.binary(max_size=20),
    }
    if kind in scalars:
        return scalars[kind]
    inner = st.sampled_from(list(scalars) + ([thrift.STRUCT, thrift.LIST] if depth < 2 else []))
    if kind == thrift.LIST:
        return inner.flatmap(lambda e: st.lists(thrift_values(e, depth + 1), max_size=20).map(lambda items: thrift.Sequence(e, items)))
    if kind == thrift.MAP:
        pair = st.tuples(inner, inner)
        return pair.flatmap(lambda kv: st.lists(st.tuples(thrift_values(kv[0], depth + 1), thrift_values(kv[1], depth + 1)), max_size=4).map(lambda items: thrift.Mapping(kv[0], kv[1], items) if items else thrift.Mapping(0, 0, [])))
    return thrift_structs(depth + 1)


def thrift_fields(depth: int) -> st.SearchStrategy[thrift.Field]:
    kinds = [thrift.BYTE, thrift.I16, thrift.I32, thrift.I64, thrift.DOUBLE, thrift.BINARY, thrift.LIST, thrift.MAP]
    kinds += [thrift.STRUCT] if depth < 3 else []
    booleans = st.booleans().map(lambda b: thrift.Field(thrift.TRUE if b else thrift.FALSE, b))
    return booleans | st.sampled_from(kinds).flatmap(lambda k: thrift_values(k, depth).map(lambda v: thrift.Field(k, v)))


def thrift_structs(depth: int = 0) -> st.SearchStrategy[dict[int, thrift.Field]]:
    return st.dictionaries(st.integers(1, 300), thrift_fields(depth), max_size=6)


@settings(max_examples=200, deadline=None)
@given(fields=thrift_structs())
def test_any_thrift_struct_encodes_and_decodes_to_itself(fields: dict[int, thrift.Field]) -> None:
    encoded = encode_struct(fields)

    assert decode_struct(encoded) == fields
    assert encode_struct(decode_struct(encoded)) == encoded


@given(data=st.binary(max_size=200))
def test_garbage_for_a_footer_is_refused_or_decoded_never_crashes(data: bytes) -> None:
    with contextlib.suppress(SnapshotError):
        decode_struct(data)


def test_files_of_every_type_join_into_one_file_of_all_their_rows_and_statistics(tmp_path: Path) -> None:
    footers = [write(tmp_path / f"{k}.parquet", EVERY_TYPE, compression="zstd", row_group_size=3) for k in range(3)]

    joined = join_all(tmp_path / "joined.parquet", footers)

    assert joined.equals(pa.concat_tables([EVERY_TYPE] * 3))
    source, result = pq.ParquetFile(tmp_path / "0.parquet").metadata, pq.ParquetFile(tmp_path / "joined.parquet").metadata
    assert result.num_row_groups == 3 * source.num_row_groups
    for column in range(source.num_columns):
        assert result.row_group(2).column(column).statistics == source.row_group(0).column(column).statistics


def test_a_page_index_is_left_out_and_the_joined_file_reads_with_every_reader(tmp_path: Path) -> None:
    import duckdb
    import polars as pl

    table = pa.table({"id": pa.array(range(10_000), pa.int64()), "text": [f"v{i % 13}" for i in range(10_000)]})
    footers = [write(tmp_path / f"{k}.parquet", table, write_page_index=True, row_group_size=3000) for k in range(2)]

    joined = join_all(tmp_path / "joined.parquet", footers)

    expected = pa.concat_tables([table, table])
    assert joined.equals(expected)
    assert pl.read_parquet(tmp_path / "joined.parquet").to_arrow().equals(pl.from_arrow(expected).to_arrow())  # type: ignore[union-attr]
    counted = duckdb.connect().execute(f"SELECT count(*), sum(id) FROM '{tmp_path / 'joined.parquet'}'").fetchall()
    assert counted == [(20_000, 2 * sum(range(10_000)))]


@st.composite
def tables_and_choice(draw: st.DrawFn) -> tuple[list[pa.Table], list[int], str, list[tuple[int, int]]]:
    kinds = column_kinds()
    chosen = draw(st.lists(st.sampled_from(range(len(kinds))), min_size=1, max_size=5, unique=True))
    tables = []
    for _ in range(draw(st.integers(1, 3))):
        n_rows = draw(st.integers(1, 12))
        arrays = {
            f"c{index}": build_array(kinds[index], draw(st.lists(st.none() | kinds[index].values, min_size=n_rows, max_size=n_rows)))
            for index in chosen
        }
        tables.append(pa.table(arrays))
    row_group_sizes = [draw(st.integers(1, 5)) for _ in tables]
    codec = draw(st.sampled_from(["zstd", "snappy", "none"]))
    groups = [(file, group) for file, table in enumerate(tables) for group in range(-(-table.num_rows // row_group_sizes[file]))]
    picked = draw(st.lists(st.sampled_from(groups), min_size=1, max_size=8))
    return tables, row_group_sizes, codec, picked


def values(table: pa.Table) -> pa.Table:
    """The table with every NaN made a number that compares equal (NaN != NaN), and ``table`` otherwise."""
    columns = [
        pc.if_else(pc.is_nan(c), pa.scalar(-1.5, c.type), c) if pa.types.is_floating(c.type) else c for c in table.columns
    ]
    return pa.table(columns, names=table.column_names)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=tables_and_choice())
def test_any_row_groups_of_files_of_one_schema_join_into_exactly_their_rows(tmp_path: Path, case: tuple) -> None:  # type: ignore[type-arg]
    tables, row_group_sizes, codec, picked = case
    schema = tables[0].schema
    tables = [t.cast(schema) for t in tables]
    footers = []
    for k, (table, size) in enumerate(zip(tables, row_group_sizes, strict=True)):
        footers.append(write(tmp_path / f"in-{k}.parquet", table, compression=codec, row_group_size=size))
    pieces = [(footers[file], (footers[file].row_groups or [])[group]) for file, group in picked]

    write_joined(tmp_path / "joined.parquet", pieces)

    expected = [pq.ParquetFile(tmp_path / f"in-{file}.parquet").read_row_group(group) for file, group in picked]
    assert values(pq.read_table(tmp_path / "joined.parquet")).equals(values(pa.concat_tables(expected)))
    assert pq.ParquetFile(tmp_path / "joined.parquet").metadata.num_rows == sum(t.num_rows for t in expected)


def test_files_are_joined_from_s3_as_from_local_disk(root: str, tmp_path: Path) -> None:
    table = pa.table({"id": pa.array(range(5_000), pa.int64()), "text": [f"v{i}" for i in range(5_000)]})
    footers = []
    for k in range(2):
        uri = storage.join(root, f"staging/{k}.parquet")
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=1_000)
        storage.write_bytes(uri, sink.getvalue())
        footers.append(read_footer(uri, storage.head(uri).size))

    assert join_all(tmp_path / "joined.parquet", footers).equals(pa.concat_tables([table, table]))


def test_a_file_that_is_not_parquet_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.parquet"
    path.write_bytes(b"hello, this is text" * 10)

    with pytest.raises(SnapshotError, match=r"notes\.parquet is not a Parquet file"):
        read_footer(str(path), path.stat().st_size)


def ordered_files(tmp_path: Path, values: list[list[object]], kind: pa.DataType) -> list[Footer]:
    return [write(tmp_path / f"{k}.parquet", pa.table({"key": pa.array(v, kind)}), row_group_size=2) for k, v in enumerate(values)]


def names(footers: list[Footer] | None) -> list[str] | None:
    return None if footers is None else [Path(f.uri).stem for f in footers]


@pytest.mark.parametrize(
    ("kind", "values", "descending", "expected"),
    [
        (pa.int64(), [[5, 6, 9], [1, 2, 3], [10, 10]], False, ["1", "0", "2"]),
        (pa.int64(), [[5, 6, 9], [1, 2, 5]], False, ["1", "0"]),  # touching: equal keys in either order are sorted
        (pa.int64(), [[5, 6, 9], [1, 2, 6]], False, None),  # overlapping
        (pa.int64(), [[9, 6, 5], [3, 2, 1]], True, ["0", "1"]),
        (pa.int64(), [[3, 2, 1], [9, 6, 5]], True, ["1", "0"]),
        (pa.int8(), [[-5, 0], [-128, -6]], False, ["1", "0"]),
        (pa.string(), [["b", "ba"], ["a", "az"], ["é"]], False, ["1", "0", "2"]),  # byte order: "é" after "z"
        (pa.timestamp("ns"), [[2_000_000_000_000_000_001], [1, 2_000_000_000_000_000_000]], False, ["1", "0"]),
        (pa.date32(), [[dt.date(2024, 1, 2)], [dt.date(1900, 1, 1)]], False, ["1", "0"]),
        (pa.int64(), [[1, None], [5]], False, None),  # nulls sort last: statistics cannot place them
        (pa.float64(), [[1.0, 2.0], [3.0]], False, None),  # NaN is left out of statistics
        (pa.uint64(), [[1], [2**63]], False, None),  # stored as signed INT64
        (pa.decimal128(5, 2), [[1], [2]], False, None),
    ],
)
def test_files_are_put_in_key_order_only_when_their_statistics_prove_they_do_not_overlap(
    tmp_path: Path, kind: pa.DataType, values: list[list[object]], descending: bool, expected: list[str] | None
) -> None:
    footers = ordered_files(tmp_path, values, kind)
    schema = pa.schema([("key", kind)])

    assert names(in_key_order(footers, [SortKey("key", descending)], schema)) == expected


def test_with_several_keys_files_whose_first_keys_touch_are_not_joined(tmp_path: Path) -> None:
    footers = [write(tmp_path / f"{k}.parquet", pa.table({"a": [k, k + 1], "b": [2 - k, 1]})) for k in range(2)]
    schema = footers[0].arrow_schema()

    assert in_key_order(footers, [SortKey("a"), SortKey("b")], schema) is None  # a=1 in both: b decides
    assert names(in_key_order(footers[:1], [SortKey("a"), SortKey("b")], schema)) == ["0"]
    assert names(in_key_order(footers, [], schema)) == ["0", "1"]  # no sort: any order


def test_files_without_statistics_are_not_put_in_order(tmp_path: Path) -> None:
    footers = [write(tmp_path / f"{k}.parquet", pa.table({"key": [k]}), write_statistics=False) for k in range(2)]

    assert in_key_order(footers, [SortKey("key")], footers[0].arrow_schema()) is None


@pytest.mark.parametrize(
    ("sizes", "target", "n_files", "expected"),
    [
        ([10] * 10, 30, None, [3, 3, 3, 1]),
        ([10] * 10, 35, None, [4, 4, 2]),  # 40 is as near 35 as 30: a file closes only when one more goes further
        ([16, 16, 16, 16, 3], 32, None, [2, 2, 1]),
        ([100], 30, None, [1]),  # a row group bigger than the target is a file of its own
        ([10] * 10, 30, 3, [3, 4, 3]),  # even: ends nearest to 33.3, 66.7 and 100
        ([10] * 9, 100, 1, [9]),
        ([10, 50, 10], 30, 3, [1, 1, 1]),
        ([10, 10], 30, 3, [1, 1]),  # never an empty file
        ([], 30, None, []),
    ],
)
def test_row_groups_are_planned_into_files_near_the_target(
    sizes: list[int], target: int, n_files: int | None, expected: list[int]
) -> None:
    assert plan_files(sizes, target, n_files) == expected


@given(sizes=st.lists(st.integers(1, 50), max_size=60), target=st.integers(1, 400))
def test_planned_files_take_every_row_group_once_and_miss_the_target_by_half_a_row_group_at_most(
    sizes: list[int], target: int
) -> None:
    counts = plan_files(sizes, target)

    assert sum(counts) == len(sizes) and all(c > 0 for c in counts)
    even = plan_files(sizes, target, n_files=max(1, round(sum(sizes) / target)))
    assert sum(even) == len(sizes) and all(c > 0 for c in even)
    start = 0
    for count in counts[:-1]:
        size = sum(sizes[start : start + count])
        nxt = sizes[start + count]
        assert size + nxt / 2 >= target or count == 0  # closed only when one more would go further from it
        assert size - sizes[start + count - 1] / 2 <= target or count == 1
        start += count


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from([pa.int64(), pa.int16(), pa.string(), pa.timestamp("ns"), pa.date32()]),
    files=st.lists(st.lists(st.integers(-50, 50), min_size=1, max_size=8), min_size=1, max_size=4),
    descending=st.booleans(),
)
def test_files_put_in_key_order_are_sorted_one_after_the_other(
    tmp_path: Path, kind: pa.DataType, files: list[list[int]], descending: bool
) -> None:
    """Whatever the files' ranges, an order given is a sorted one; and files drawn apart are always put in order."""

    def typed(values: list[int]) -> pa.Array:
        if pa.types.is_string(kind):
            return pa.array([f"{v + 100:03d}" for v in values])  # text in the numbers' order
        return pa.array(values, pa.int64()).cast(kind) if not pa.types.is_date32(kind) else pa.array(values, pa.int32()).cast(kind)

    tables = [pa.table({"key": typed(sorted(values, reverse=descending))}) for values in files]
    footers = [write(tmp_path / f"{k}.parquet", table, row_group_size=3) for k, table in enumerate(tables)]

    ordered = in_key_order(footers, [SortKey("key", descending)], tables[0].schema)

    disjoint = all(
        max(a) < min(b) or max(b) < min(a) for i, a in enumerate(files) for b in files[i + 1 :]
    )
    assert ordered is not None or not disjoint
    if ordered is not None:
        keys = pa.concat_tables([pq.read_table(f.uri) for f in ordered])["key"]
        order = "descending" if descending else "ascending"
        assert keys.equals(keys.take(pc.sort_indices(keys, sort_keys=[("key", order)])))
