"""Hypothesis strategies for Arrow tables of random schemas: every type the lake keeps or maps (see
:mod:`dbsnaplake.frames.types`), nested types, nulls, empty strings, NaN, extreme dates, times and decimals, and
hostile column names and partition values."""

from __future__ import annotations

import decimal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

DAY_MS = 86_400_000
FIRST_DAY, LAST_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, in days since 1970
FIRST_SECOND, LAST_SECOND = FIRST_DAY * 86_400, LAST_DAY * 86_400 + 86_399
NS_RANGE_US = 9_000_000_000_000_000  # whole microseconds that fit a nanosecond timestamp (about ±285 years)

HOSTILE_NAMES = ("id", "a b", "ünïcödé", "x=y", "a/b", "dots.in.name", "'quote\"", "%41", "#", "UPPER", "select")
HOSTILE_PARTITION_VALUES = ("", "a/b", "k=v", "50%", " space ", "ünï", "..", "a\\b", "#?", "x" * 40)


@dataclass(frozen=True)
class ColumnKind:
    """One column type and how to draw its values (``None`` for null)."""

    type: pa.DataType
    values: st.SearchStrategy[Any]
    sortable: bool = True


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([lo, hi, 0] if lo <= 0 <= hi else [lo, hi]), st.integers(lo, hi))


def _decimals(precision: int, scale: int) -> st.SearchStrategy[decimal.Decimal]:
    top = 10**precision - 1
    return _ints(-top, top).map(lambda unscaled: decimal.Decimal(f"{unscaled}e-{scale}"))  # exact, any precision


def _temporal(t: pa.DataType, lo: int, hi: int, step: int = 1) -> ColumnKind:
    """Values drawn as integers (so extreme ones stay exact) and stored as ``t``."""
    return ColumnKind(t, _ints(lo // step, hi // step).map(lambda v: ("int", v * step)))


def column_kinds() -> list[ColumnKind]:
    text = st.text(max_size=6)
    kinds = [
        ColumnKind(pa.int8(), _ints(-(2**7), 2**7 - 1)),
        ColumnKind(pa.int64(), _ints(-(2**63), 2**63 - 1)),
        ColumnKind(pa.uint64(), _ints(0, 2**64 - 1)),
        ColumnKind(pa.float32(), st.floats(width=32, allow_nan=True)),
        ColumnKind(pa.float64(), st.floats(allow_nan=True)),
        ColumnKind(pa.bool_(), st.booleans()),
        ColumnKind(pa.string(), st.one_of(st.just(""), text)),
        ColumnKind(pa.large_string(), text),
        ColumnKind(pa.binary(), st.binary(max_size=6)),
        ColumnKind(pa.binary(3), st.binary(min_size=3, max_size=3)),
        ColumnKind(pa.null(), st.none()),
        ColumnKind(pa.decimal128(38, 0), _decimals(38, 0)),
        ColumnKind(pa.decimal128(38, 38), _decimals(38, 38)),
        ColumnKind(pa.decimal128(9, 2), _decimals(9, 2)),
        ColumnKind(pa.decimal256(20, 4), _decimals(20, 4)),
        _temporal(pa.date32(), FIRST_DAY, LAST_DAY),
        _temporal(pa.date64(), FIRST_DAY * DAY_MS, LAST_DAY * DAY_MS, DAY_MS),
        _temporal(pa.time32("s"), 0, 86_399),
        _temporal(pa.time32("ms"), 0, DAY_MS - 1),
        _temporal(pa.time64("us"), 0, DAY_MS * 1000 - 1),
        _temporal(pa.time64("ns"), 0, DAY_MS * 1_000_000 - 1),
        _temporal(pa.timestamp("s"), FIRST_SECOND, LAST_SECOND),
        _temporal(pa.timestamp("ms", "UTC"), FIRST_SECOND * 1000, LAST_SECOND * 1000),
        _temporal(pa.timestamp("us", "Europe/Paris"), FIRST_SECOND * 10**6, LAST_SECOND * 10**6),
        _temporal(pa.timestamp("ns"), -NS_RANGE_US * 1000, NS_RANGE_US * 1000, 1000),
        _temporal(pa.duration("s"), -(10**12), 10**12),
        _temporal(pa.duration("ns"), -(2**62), 2**62),
        ColumnKind(pa.list_(pa.int32()), st.lists(st.none() | _ints(-(2**31), 2**31 - 1), max_size=3), False),
        ColumnKind(pa.large_list(pa.string()), st.lists(st.none() | text, max_size=3), False),
        ColumnKind(
            pa.struct([("a", pa.int64()), ("b", pa.string())]),
            st.fixed_dictionaries({"a": st.none() | st.integers(-5, 5), "b": st.none() | text}),
            False,
        ),
        ColumnKind(
            pa.map_(pa.string(), pa.int32()),
            st.lists(st.tuples(text, st.integers(-5, 5)), max_size=2, unique_by=lambda kv: kv[0]),
            False,
        ),
        ColumnKind(pa.dictionary(pa.int32(), pa.string()), st.sampled_from(["red", "green", ""])),
    ]
    return kinds


def build_array(kind: ColumnKind, values: list[Any]) -> pa.Array:
    """An array of ``kind.type`` from drawn values (temporal ones drawn as integers)."""
    if isinstance(kind.type, pa.DictionaryType):
        return pa.array(values, kind.type.value_type).dictionary_encode()
    if any(isinstance(v, tuple) and v and v[0] == "int" for v in values):
        ints = [v[1] if v is not None else None for v in values]
        storage = pa.int32() if kind.type.bit_width == 32 else pa.int64()
        return pa.array(ints, storage).cast(kind.type)
    return pa.array(values, kind.type)


@dataclass(frozen=True)
class SnapshotCase:
    """Files of one random schema, and how the pipeline is asked to lay them out."""

    files: list[pa.Table]
    partition_by: str | None
    sort_by: tuple[str, ...]
    group_size: int


POLARS_DECODED = frozenset(
    {"int8", "int64", "uint64", "float", "double", "bool", "string", "large_string", "binary", "date32[day]"}
    | {"timestamp[ms, tz=UTC]"}
)
"""The drawn types that ETL and validation let Polars decode (:mod:`dbsnaplake.frames.polars_reader`)."""


@st.composite
def snapshot_cases(draw: Callable[..., Any], polars_decoded_only: bool = False) -> SnapshotCase:
    """Files of a random schema (of :data:`POLARS_DECODED` types only, with ``polars_decoded_only``)."""
    kinds = [k for k in column_kinds() if not polars_decoded_only or str(k.type) in POLARS_DECODED]
    chosen = draw(st.lists(st.sampled_from(range(len(kinds))), min_size=1, max_size=7, unique=True))
    names = draw(st.lists(st.sampled_from(HOSTILE_NAMES), min_size=len(chosen), max_size=len(chosen), unique=True))
    columns = [(name, kinds[index]) for name, index in zip(names, chosen, strict=True)]
    partition_by = "part" if draw(st.booleans()) else None
    sortable = [name for name, kind in columns if kind.sortable and not pa.types.is_null(kind.type)]
    sort_by = tuple(draw(st.lists(st.sampled_from(sortable), max_size=2, unique=True))) if sortable else ()
    files = []
    for _ in range(draw(st.integers(1, 3))):
        n_rows = draw(st.integers(0, 6))
        arrays = {}
        for name, kind in columns:
            values = draw(st.lists(st.none() | kind.values, min_size=n_rows, max_size=n_rows))
            arrays[name] = build_array(kind, values)
        if partition_by:
            parts = st.none() | st.sampled_from(HOSTILE_PARTITION_VALUES)
            arrays[partition_by] = pa.array(draw(st.lists(parts, min_size=n_rows, max_size=n_rows)), pa.string())
        files.append(pa.table(arrays))
    group_size = draw(st.sampled_from([1, 64 * 1024**2]))  # a group per file, or every file in one group
    return SnapshotCase(files, partition_by, sort_by, group_size)
