"""Row order: parsing ``--sort-by``, and merging sorted runs into one sorted stream.

The compactor merges the sorted staging files of a partition with :func:`merge_sorted_runs`, a few rows at a
time. Whatever the slicing, the merged stream must come out in exactly the order :func:`sort_table` gives the
whole table: ascending or descending per key, NaN after every number, nulls last.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dbsnaplake.api import ConfigError, SortKey, parse_sort_keys
from dbsnaplake.frames.sorting import is_sorted, merge_sorted_runs, neighbours_in_order, sort_table

# ---- parse_sort_keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        (None, ()),
        ("", ()),
        ("order_time", (SortKey("order_time"),)),
        ("order_time,amount:desc", (SortKey("order_time"), SortKey("amount", descending=True))),
        (" a : DESC , b:asc ", (SortKey("a", descending=True), SortKey("b"))),
        ("a:Asc", (SortKey("a"),)),
        ("a,,b,", (SortKey("a"), SortKey("b"))),
        (["a", "b:desc"], (SortKey("a"), SortKey("b", descending=True))),
        (("x:desc",), (SortKey("x", descending=True),)),
    ],
)
def test_parse_sort_keys(text: str | list[str] | None, keys: tuple[SortKey, ...]) -> None:
    assert parse_sort_keys(text) == keys


@pytest.mark.parametrize("text", ["a:down", "a:descending", "a,b:up", "a:asc:desc", ["a:dsc"]])
def test_parse_sort_keys_refuses_unknown_directions(text: str | list[str]) -> None:
    with pytest.raises(ConfigError, match="must be 'asc' or 'desc'"):
        parse_sort_keys(text)


def test_sort_key_prints_as_it_is_parsed() -> None:
    keys = parse_sort_keys("a,b:desc")
    assert ",".join(map(str, keys)) == "a,b:desc"


# ---- sort_table and merge_sorted_runs ---------------------------------------------------------------------

SCHEMA = pa.schema(
    [
        ("i", pa.int64()),
        ("f", pa.float64()),
        ("s", pa.string()),
        ("t", pa.timestamp("us")),
        ("row", pa.int64()),  # unique: tells rows apart
    ]
)
T0 = dt.datetime(2021, 1, 1)

ints = st.none() | st.integers(min_value=-3, max_value=3)  # few values: many ties
floats = st.none() | st.sampled_from([-1.5, -0.0, 0.0, 2.25, 1e300, -math.inf, math.inf, math.nan])
strings = st.sampled_from(["", "a", "ab", "b", "B", "é", "z", "日"])
times = st.integers(min_value=0, max_value=3).map(lambda n: T0 + dt.timedelta(microseconds=n))
columns = ("i", "f", "s", "t")


def make_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    data = {name: [r[k] for r in rows] for k, name in enumerate(columns)}
    data["row"] = list(range(len(rows)))
    return pa.table(data, schema=SCHEMA)


def key_of(value: Any) -> Any:
    """A value that compares equal to itself (NaN does not)."""
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


def key_columns(table: pa.Table, keys: tuple[SortKey, ...]) -> list[tuple[Any, ...]]:
    names = [k.column for k in keys]
    return [tuple(key_of(v) for v in row.values()) for row in table.select(names).to_pylist()]


def row_multiset(table: pa.Table) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(key_of(v) for v in row.values()) for row in table.to_pylist())


def sliced(table: pa.Table, sizes: list[int]) -> Iterator[pa.Table]:
    """Yield ``table`` as consecutive slices of the given sizes (cycled); empty slices included on purpose."""
    start, k = 0, 0
    while start < table.num_rows:
        n = sizes[k % len(sizes)]
        yield table.slice(start, n)
        start += n
        k += 1


sort_keys = st.lists(
    st.builds(SortKey, st.sampled_from(columns), st.booleans()),
    min_size=1,
    max_size=3,
    unique_by=lambda k: k.column,
).map(tuple)


def merge_in_slices(
    table: pa.Table, keys: tuple[SortKey, ...], cuts: list[int], slice_sizes: list[list[int]]
) -> pa.Table:
    """Cut ``table`` into runs at ``cuts``, sort each run, merge the runs fed in slices, concatenate."""
    bounds = [0, *sorted(min(c, table.num_rows) for c in cuts), table.num_rows]
    runs = [sort_table(table.slice(a, b - a), keys) for a, b in itertools.pairwise(bounds)]
    assert all(is_sorted(run, keys) for run in runs)
    sizes = [(slice_sizes[k % len(slice_sizes)] if slice_sizes else []) for k in range(len(runs))]
    sizes = [s if any(s) else [*s, 1] for s in sizes]  # at least one non-empty slice, or no progress
    parts = list(merge_sorted_runs([sliced(run, s) for run, s in zip(runs, sizes, strict=True)], keys))
    return pa.concat_tables(parts) if parts else table.schema.empty_table()


NAN, ONE = (0, math.nan, "", T0), (0, 1.0, "", T0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(ints, floats, strings, times), max_size=60),
    keys=sort_keys,
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=4),
    slice_sizes=st.lists(st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=4), max_size=5),
)
# A run whose last row is NaN must not let another run's later numbers out after it (and the same for nulls).
@example(rows=[NAN, ONE, ONE], keys=(SortKey("f"),), cuts=[1], slice_sizes=[[1]])
@example(rows=[NAN, ONE, ONE], keys=(SortKey("f", descending=True),), cuts=[1], slice_sizes=[[1]])
@example(
    rows=[(None, 0.0, "", T0), (1, 0.0, "", T0), (2, 0.0, "", T0)],
    keys=(SortKey("i"),),
    cuts=[1],
    slice_sizes=[[1]],
)
def test_merging_sorted_runs_equals_sorting_everything(
    rows: list[tuple[Any, ...]], keys: tuple[SortKey, ...], cuts: list[int], slice_sizes: list[list[int]]
) -> None:
    table = make_table(rows)

    merged = merge_in_slices(table, keys, cuts, slice_sizes)

    assert merged.schema == SCHEMA
    assert key_columns(merged, keys) == key_columns(sort_table(table, keys), keys)
    assert row_multiset(merged) == row_multiset(table)
    assert is_sorted(merged, keys)


@pytest.mark.parametrize(
    ("keys", "expected_f"),
    [
        ((SortKey("f"),), [-1.0, 0.5, 3.0, math.nan, None]),
        ((SortKey("f", descending=True),), [3.0, 0.5, -1.0, math.nan, None]),
    ],
)
def test_nan_after_every_number_and_nulls_last_both_ways(
    keys: tuple[SortKey, ...], expected_f: list[float | None]
) -> None:
    table = pa.table({"f": [None, 3.0, math.nan, -1.0, 0.5]})
    assert [key_of(v) for v in sort_table(table, keys)["f"].to_pylist()] == [key_of(v) for v in expected_f]
    halves = [sort_table(table.slice(0, 2), keys), sort_table(table.slice(2), keys)]
    merged = pa.concat_tables(merge_sorted_runs([iter([h]) for h in halves], keys))
    assert [key_of(v) for v in merged["f"].to_pylist()] == [key_of(v) for v in expected_f]


def test_sort_table_is_stable() -> None:
    table = pa.table({"k": [2, 1, 2, 1, 2], "row": [0, 1, 2, 3, 4]})
    assert sort_table(table, (SortKey("k"),))["row"].to_pylist() == [1, 3, 0, 2, 4]
    assert sort_table(table, (SortKey("k", descending=True),))["row"].to_pylist() == [0, 2, 4, 1, 3]


def test_merge_of_runs_that_are_all_empty_yields_nothing() -> None:
    empty = SCHEMA.empty_table()
    assert list(merge_sorted_runs([iter([]), iter([empty, empty])], (SortKey("i"),))) == []


def test_is_sorted_sees_a_row_out_of_order() -> None:
    keys = (SortKey("i"), SortKey("s", descending=True))
    assert is_sorted(pa.table({"i": [1, 1, 2, None], "s": ["b", "a", "z", "a"]}), keys)
    assert not is_sorted(pa.table({"i": [1, 1, 2, None], "s": ["a", "b", "z", "a"]}), keys)
    assert not is_sorted(pa.table({"i": [None, 1], "s": ["a", "a"]}), keys)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(ints, floats, strings, times), max_size=30), keys=sort_keys)
def test_rows_already_in_order_are_kept_as_they_are_and_others_sorted(
    rows: list[tuple[Any, ...]], keys: tuple[SortKey, ...]
) -> None:
    """Sorting skips the gather when the rows are in order (ties included: the sort is stable), and only then."""
    from dbsnaplake.stages.etl import sorted_slices

    table = make_table(rows)
    ordered = sort_table(table, keys)
    assert (ordered is table) == is_sorted(table, keys)
    assert is_sorted(ordered, keys) and row_multiset(ordered) == row_multiset(table)
    assert sort_table(ordered, keys) is ordered  # sorted once, never copied again
    for source in (table, ordered):
        pieces = list(sorted_slices(source, keys, 4))
        assert all(0 < p.num_rows <= 4 for p in pieces)
        assert pa.concat_tables([SCHEMA.empty_table(), *pieces])["row"].to_pylist() == ordered["row"].to_pylist()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(ints, floats, strings, times), max_size=30), keys=sort_keys)
@example(rows=[(0, 0.0, "a", T0), (0, -0.0, "a", T0)], keys=(SortKey("f"),))
def test_comparing_neighbours_never_calls_rows_out_of_order_sorted(
    rows: list[tuple[Any, ...]], keys: tuple[SortKey, ...]
) -> None:
    """The check before any sort says "in order" only of rows the sort would leave where they are, and says it of
    every sorted table of one key without nulls or NaN."""
    table = make_table(rows)
    if neighbours_in_order(table, keys):
        assert is_sorted(table, keys)
        assert sort_table(table, keys)["row"].to_pylist() == table["row"].to_pylist()
    ordered = sort_table(table, keys)
    key = ordered.column(keys[0].column).to_pylist()
    if len(keys) == 1 and not any(v is None or (isinstance(v, float) and math.isnan(v)) for v in key):
        assert neighbours_in_order(ordered, keys)


def test_runs_that_do_not_overlap_are_merged_table_by_table() -> None:
    """Groups of snapshot files ordered by the sort key stage runs that follow each other: the merge hands on a
    run's table alone (no sort) while no other run reaches into its range."""
    keys = (SortKey("i"),)
    runs = [[pa.table({"i": [6 * r + 3 * t + k for k in range(3)]}) for t in range(2)] for r in range(3)]
    merged = list(merge_sorted_runs([iter(run) for run in runs], keys))
    assert pa.concat_tables(merged)["i"].to_pylist() == list(range(18))
    assert merged[0]["i"].to_pylist() == [0, 1, 2]  # the first table, before run 1 starts
