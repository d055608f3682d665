"""Row order: ``--sort-by`` keys, sorting a table, and merging already-sorted runs with bounded memory.

One order is used everywhere (pyarrow's): ascending or descending per key, NaN after every number, nulls last.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dbsnaplake.errors import ConfigError
from dbsnaplake.records import SortKey


def sort_indices(table: pa.Table, keys: Sequence[SortKey]) -> pa.Array:
    """The row numbers of ``table`` in ``keys`` order (stable)."""
    order = [(k.column, "descending" if k.descending else "ascending") for k in keys]
    return pc.sort_indices(table.select([k.column for k in keys]), sort_keys=order)


def sort_table(table: pa.Table, keys: Sequence[SortKey]) -> pa.Table:
    """Sort rows (stable) by ``keys``."""
    if not keys or table.num_rows < 2:
        return table
    return table.take(sort_indices(table, keys))


def is_sorted(table: pa.Table, keys: Sequence[SortKey]) -> bool:
    """True when ``table`` is already in ``keys`` order (used by tests and validation)."""
    rows = _RowKeys(table, keys)
    return all(not rows.key(i) > rows.key(i + 1) for i in range(table.num_rows - 1))


class _Desc:
    """Inverts the order of a value, for descending keys."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.value < self.value)

    def __gt__(self, other: _Desc) -> bool:
        return bool(other.value > self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]


def _is_orderable(t: pa.DataType) -> bool:
    """pyarrow sorts every scalar type but float16; nested types have no order."""
    return not (pa.types.is_nested(t) or pa.types.is_interval(t) or pa.types.is_float16(t))


def check_sort_keys(schema: pa.Schema, keys: Sequence[SortKey], where: str) -> None:
    """Refuse a sort key whose column has no order (struct, list, map): one line naming it."""
    for key in keys:
        index = schema.get_field_index(key.column)
        if index >= 0 and not _is_orderable(schema.field(index).type):
            raise ConfigError(
                f"--sort-by {key.column}: column {key.column!r} of {where} is {schema.field(index).type}, which cannot be "
                "sorted: sort by scalar columns (numbers, text, dates, times, decimals), or by one of its fields made a "
                "column in --transform"
            )


def _comparable(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Temporal columns as their integers (same order; ``as_py`` cannot make nanoseconds into datetimes)."""
    t = column.type
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_time64(t) or pa.types.is_date64(t):
        return column.cast(pa.int64())
    if pa.types.is_time32(t) or pa.types.is_date32(t):
        return column.cast(pa.int32())
    return column


class _RowKeys:
    """Comparable Python keys for single rows of a table, in pyarrow's sort order."""

    def __init__(self, table: pa.Table, keys: Sequence[SortKey]) -> None:
        self._columns = [(_comparable(table.column(k.column)), k.descending) for k in keys]

    def key(self, row: int) -> tuple[Any, ...]:
        out: list[Any] = []
        for column, descending in self._columns:
            value = column[row].as_py()
            if value is None:
                out.append((2,))
            elif isinstance(value, float) and math.isnan(value):
                out.append((1,))
            else:
                out.append((0, _Desc(value) if descending else value))
        return tuple(out)


def _count_not_after(rows: _RowKeys, n_rows: int, bound: tuple[Any, ...]) -> int:
    """Number of leading rows (of a sorted run) whose key is <= ``bound``, by binary search."""
    lo, hi = 0, n_rows
    while lo < hi:
        mid = (lo + hi) // 2
        if rows.key(mid) > bound:
            hi = mid
        else:
            lo = mid + 1
    return lo


def merge_sorted_runs(runs: Iterable[Iterator[pa.Table]], keys: Sequence[SortKey]) -> Iterator[pa.Table]:
    """Merge runs that are each sorted by ``keys`` into one sorted stream of tables.

    Each run yields tables (e.g. the row groups of one sorted staging file). Only one table per run is held
    at a time. Each round takes the smallest "last key" over the runs' current tables (the frontier): every
    buffered row at or before it can be emitted, since no run can later produce a smaller row. Those rows are
    sorted together and yielded; the run that set the frontier is then fully consumed and refilled.
    """
    buffers: list[tuple[pa.Table, Iterator[pa.Table]]] = []
    for run in runs:
        first = _next_nonempty(run)
        if first is not None:
            buffers.append((first, run))
    while buffers:
        if len(buffers) == 1:
            table, run = buffers[0]
            yield table
            yield from (t for t in run if t.num_rows)
            return
        row_keys = [_RowKeys(table, keys) for table, _ in buffers]
        last_keys = [rk.key(table.num_rows - 1) for rk, (table, _) in zip(row_keys, buffers, strict=True)]
        frontier = min(last_keys)
        emitted: list[pa.Table] = []
        refilled: list[tuple[pa.Table, Iterator[pa.Table]]] = []
        for rk, (table, run) in zip(row_keys, buffers, strict=True):
            n = _count_not_after(rk, table.num_rows, frontier)
            if n:
                emitted.append(table.slice(0, n))
            if n < table.num_rows:
                refilled.append((table.slice(n), run))
            else:
                nxt = _next_nonempty(run)
                if nxt is not None:
                    refilled.append((nxt, run))
        buffers = refilled
        yield sort_table(pa.concat_tables(emitted), keys)


def _next_nonempty(run: Iterator[pa.Table]) -> pa.Table | None:
    for table in run:
        if table.num_rows:
            return table
    return None
