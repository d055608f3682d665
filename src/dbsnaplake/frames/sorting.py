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


def sorted_order(table: pa.Table, keys: Sequence[SortKey]) -> pa.Array | None:
    """The row numbers of ``table`` in ``keys`` order (stable), or ``None`` when the rows are in that order already
    (snapshot files ordered by the sort key, as exports by an increasing id or time often are): then a gather of
    every column would only copy them. One key without nulls or NaN is checked by comparing neighbours, before
    any sort."""
    if not keys or table.num_rows < 2 or neighbours_in_order(table, keys):
        return None
    indices = sort_indices(table, keys)
    return None if in_order(indices) else indices


def sort_table(table: pa.Table, keys: Sequence[SortKey]) -> pa.Table:
    """Sort rows (stable) by ``keys``; rows already in order are returned as they are (no copy)."""
    indices = sorted_order(table, keys)
    return table if indices is None else table.take(indices)


def in_order(indices: pa.Array) -> bool:
    """True when a stable sort's row numbers leave every row where it is: the rows were sorted already."""
    numbers = indices.to_numpy()
    return bool((numbers[1:] > numbers[:-1]).all())  # a permutation that only increases is the identity


def neighbours_in_order(table: pa.Table, keys: Sequence[SortKey]) -> bool:
    """True when each row's one sort key is not before the previous row's (one vectorised comparison, no sort);
    False when it is, and whenever the comparison cannot tell the sort's order alone: several keys, nulls (which
    sort last), NaN (after every number), or a type without a comparison kernel."""
    if len(keys) != 1:
        return False
    if table.num_rows < 2:
        return True
    column = table.column(keys[0].column)
    kind = column.type
    comparable = (
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_temporal(kind)
        or pa.types.is_decimal(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
    )  # fmt: skip
    if not comparable or pa.types.is_float16(kind) or column.null_count:
        return False
    if pa.types.is_floating(kind) and pc.any(pc.is_nan(column)).as_py():
        return False
    earlier, later = column.slice(0, len(column) - 1), column.slice(1)
    not_before = pc.less_equal(later, earlier) if keys[0].descending else pc.greater_equal(later, earlier)
    return bool(pc.all(not_before).as_py())


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


class _Run:
    """One sorted run being merged: its current table, the keys of that table's first and last rows, and the run's
    next table read ahead, so a run that has no more rows is known as soon as its last table is read."""

    def __init__(self, tables: Iterator[pa.Table], keys: Sequence[SortKey]) -> None:
        self._tables = tables
        self._keys = keys
        self._ahead = _next_nonempty(tables)
        self.table = pa.table({})
        self.advance()

    @property
    def done(self) -> bool:
        """No rows after the current table's."""
        return self._ahead is None

    def advance(self) -> None:
        """Make the table read ahead the current one, and read the next."""
        self.table = self._ahead if self._ahead is not None else pa.table({})
        self._ahead = _next_nonempty(self._tables) if self._ahead is not None else None
        self._rows = _RowKeys(self.table, self._keys) if self.table.num_rows else None
        self.first = self._rows.key(0) if self._rows else ()
        self.last = self._rows.key(self.table.num_rows - 1) if self._rows else ()

    def take_not_after(self, bound: tuple[Any, ...] | None) -> pa.Table | None:
        """Remove and return the leading rows whose key is <= ``bound`` (every row when ``bound`` is ``None``)."""
        if bound is not None and self.first > bound:
            return None
        n = self.table.num_rows if bound is None or not self.last > bound else self._count_not_after(bound)
        taken = self.table.slice(0, n)
        if n == self.table.num_rows:
            self.advance()
        else:
            self.table = self.table.slice(n)
            self._rows = _RowKeys(self.table, self._keys)
            self.first = self._rows.key(0)
        return taken

    def _count_not_after(self, bound: tuple[Any, ...]) -> int:
        assert self._rows is not None
        return _count_not_after(self._rows, self.table.num_rows, bound)


def merge_sorted_runs(runs: Iterable[Iterator[pa.Table]], keys: Sequence[SortKey]) -> Iterator[pa.Table]:
    """Merge runs that are each sorted by ``keys`` into one sorted stream of tables.

    Each run yields tables (e.g. the row groups of one sorted staging file). At most two tables per run are held at
    a time (the current one and the next, read ahead). Each round takes the smallest "last key" over the current
    tables of the runs that have more rows to come (the frontier): every buffered row at or before it can be
    emitted, since no run can later produce a smaller row. Those rows are sorted together and yielded; the run that
    set the frontier moves on to its next table. Runs whose first buffered row is past the frontier are skipped
    without a search, and runs with no more tables do not hold the frontier back: many small runs (one table each)
    are merged in one sort, not one round per run.
    """
    active = [run for run in (_Run(tables, keys) for tables in runs) if run.table.num_rows]
    while active:
        if len(active) == 1:
            yield active[0].table
            while not active[0].done:
                active[0].advance()
                yield active[0].table
            return
        pending = [run.last for run in active if not run.done]
        frontier = min(pending) if pending else None  # None: every run is in memory, emit it all
        emitted = [taken for run in active if (taken := run.take_not_after(frontier)) is not None]
        active = [run for run in active if run.table.num_rows]
        # rows of one run are in order: runs that do not overlap (groups of files ordered by the key) are concatenated
        yield emitted[0] if len(emitted) == 1 else sort_table(pa.concat_tables(emitted), keys)


def _next_nonempty(run: Iterator[pa.Table]) -> pa.Table | None:
    for table in run:
        if table.num_rows:
            return table
    return None
