"""An order-independent fingerprint of a table's rows: proof that the data lake holds the rows ETL wrote.

``fingerprint(rows)`` is the sum, mod 2**64, of a 64-bit hash of each row. The sum does not depend on the rows'
order, chunking or files, so ETL adds up each partition's fingerprint over the rows it writes to staging, and
validation recomputes it from the data lake's files (compacted, re-sorted, split) and compares. A changed value,
a missing, extra or duplicated row changes the sum.

A row's hash is computed on a canonical encoding of its values, so that what compaction does to rows without
changing them hashes the same:

- a row is the set of its non-null values, each keyed by its column's name (or ``struct.field`` path): column
  order does not matter, and a column (or struct field) that is null, or absent because an ETL group never saw
  it, adds nothing: conforming a group's rows to the unified lake schema (null-filling) keeps the hash;
- values are hashed by kind, not by storage type: every integer and every integral float as a 64-bit integer
  (so int32 → int64 → float64 widening keeps the hash), other floats as float64 (every NaN alike), decimals
  by their digits without trailing zeros, times and timestamps in nanoseconds, dates in days, every string type
  (dictionary-encoded or not) as its UTF-8 bytes, every binary type as its bytes;
- list elements are hashed with their position; a list's hash covers its length.

Every value is hashed by Polars (``Series.hash``, in Rust, a pass per column), seeded by its column's path and its
kind; a row's hash is the Polars hash of the sum of its values' hashes. Polars only promises its hash within one
Polars version, so every fingerprint is stored with :data:`ALGORITHM`, which names the Polars version, the processor
architecture and the hashes of a fixed set of sample values (a build of Polars that hashed differently would name
another algorithm); validation refuses to compare fingerprints made by different algorithms (run ETL and validation
with the same versions, or rerun with --fresh).
"""

from __future__ import annotations

import functools
import hashlib
import platform
from collections.abc import Iterable

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from dbsnaplake.frames.types import converted_schema

MASK = (1 << 64) - 1
_U64 = np.uint64
_KIND_INT, _KIND_FLOAT, _KIND_STRING, _KIND_BINARY, _KIND_DECIMAL, _KIND_TIME, _KIND_LIST = (
    0x9E3779B97F4A7C15 * k & MASK for k in range(1, 8)
)
_ROW_SEED = 0x5EED_0002
_POSITION = _U64(0xD6E8FEB86659FD93)
_MIX_1, _MIX_2 = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise on uint64 (wrapping arithmetic), in place: ``values`` (an array the
    caller owns) is overwritten and returned (a list's elements are mixed with their positions by it)."""
    shifted = np.empty_like(values)
    for shift, multiplier in ((30, _MIX_1), (27, _MIX_2)):
        np.right_shift(values, shift, out=shifted)
        np.bitwise_xor(values, shifted, out=values)
        np.multiply(values, multiplier, out=values)
    np.right_shift(values, 31, out=shifted)
    np.bitwise_xor(values, shifted, out=values)
    return values


@functools.lru_cache(maxsize=4096)
def _salt(path: str) -> int:
    """A fixed 64-bit number per column path (BLAKE2b: the same in every process and on every machine)."""
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "little")


def _valid(array: pa.Array) -> np.ndarray:
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _hashed(values: pl.Series, path: str, kind: int) -> pl.Series:
    """Polars' hash of each value, seeded by the column's path and the values' kind."""
    return values.hash(_salt(path) ^ kind)


def _integer_hashes(array: pa.Array, path: str) -> pl.Series:
    return _hashed(pl.Series(pc.cast(array, pa.int64(), safe=False)), path, _KIND_INT)


def _float_hashes(array: pa.Array, path: str) -> pl.Series:
    floats = pl.DataFrame({"x": pl.Series(pc.cast(array, pa.float64()))})
    return _lazily(floats, _float_value_hashes(pl.col("x"), path)).to_series()


def _lazily(frame: pl.DataFrame, expression: pl.Expr) -> pl.DataFrame:
    """``frame.select(expression)``, optimised as a lazy query is: a subexpression used twice (the float hash's
    floats, the integers they equal) is computed once, which an eager select does not do (half the CPU of a frame
    of numbers)."""
    return frame.lazy().select(expression).collect()


def _float_value_hashes(values: pl.Expr, path: str) -> pl.Expr:
    """Integral floats hash as the integer they equal; the others as floats (Polars hashes every NaN alike). In
    Polars, one pass each: NaN, the infinities and floats past the int64 range cast to null, not integral."""
    floats = values.cast(pl.Float64).fill_null(0.0)
    integers = floats.cast(pl.Int64, strict=False)
    integral = (integers.cast(pl.Float64) == floats).fill_null(False)
    as_integers, as_floats = integers.hash(_salt(path) ^ _KIND_INT), floats.hash(_salt(path) ^ _KIND_FLOAT)
    return pl.when(integral).then(as_integers).otherwise(as_floats)


def _decimal_hashes(array: pa.Array, path: str) -> pl.Series:
    """By the digits, trailing zeros dropped: ``1.50`` (decimal(10,2)) and ``1.500`` (decimal(12,3)) are one value."""
    text = pc.cast(array, pa.large_string())
    text = pc.replace_substring_regex(text, r"(\.\d*?)0+$", r"\1")
    text = pc.replace_substring_regex(text, r"\.$", "")
    return _hashed(pl.Series(text), path, _KIND_DECIMAL)


def _time_hashes(array: pa.Array, unit_type: pa.DataType, path: str) -> pl.Series:
    """Times, timestamps and durations in nanoseconds, dates in days: as integers of one unit."""
    in_unit = pc.cast(array, unit_type, safe=False)
    integers = pc.cast(in_unit.view(pa.int32() if pa.types.is_date32(unit_type) else pa.int64()), pa.int64())
    return _hashed(pl.Series(integers), path, _KIND_TIME)


def _list_hashes(array: pa.Array, path: str) -> np.ndarray:
    """Each list's hash: its elements' hashes, each mixed with its position, summed, and its length. A map is
    the list of its entries (``key``, ``value`` structs)."""
    if pa.types.is_map(array.type):
        entry = pa.struct([array.type.key_field, array.type.item_field])
        array = array.cast(pa.list_(entry))
    lengths = np.asarray(pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    elements = array.flatten()
    element_hashes = _mix(_value_hashes(elements, path + "[]") + _U64(_KIND_LIST))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    positions = np.arange(len(elements), dtype=np.int64) - np.repeat(starts[:-1], lengths)
    placed = _mix(element_hashes ^ (positions.astype(_U64) * _POSITION))
    sums = np.concatenate([np.zeros(1, _U64), np.cumsum(placed, dtype=_U64)])
    hashes: np.ndarray = (sums[starts[1:]] - sums[starts[:-1]]) ^ _mix(lengths.astype(_U64) ^ _U64(_KIND_LIST))
    return hashes


def _plain_hashes(array: pa.Array, path: str) -> pl.Series | np.ndarray:
    """Each value of a non-struct array as 64 bits, by its kind and its column's path (nulls are left out by the
    caller)."""
    t = array.type
    if pa.types.is_null(t):
        return np.zeros(len(array), _U64)
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return _integer_hashes(array, path)
    if pa.types.is_floating(t):
        return _float_hashes(array, path)
    if pa.types.is_decimal(t):
        return _decimal_hashes(array, path)
    if pa.types.is_timestamp(t):
        return _time_hashes(array, pa.timestamp("ns", t.tz), path)
    if pa.types.is_date(t):
        return _time_hashes(array, pa.date32(), path)
    if pa.types.is_time(t):
        return _time_hashes(array, pa.time64("ns"), path)
    if pa.types.is_duration(t):
        return _time_hashes(array, pa.duration("ns"), path)
    if _is_text(t):
        return _hashed(pl.Series(array), path, _KIND_STRING)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return _hashed(pl.Series(array), path, _KIND_BINARY)
    if pa.types.is_fixed_size_binary(t):
        return _hashed(pl.Series(pc.cast(array, pa.large_binary())), path, _KIND_BINARY)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_map(t):
        return _list_hashes(array, path)
    raise TypeError(f"column {path!r}: cannot fingerprint values of type {t}")


def _value_hashes(array: pa.Array | pa.ChunkedArray, path: str) -> np.ndarray:
    """Per row, the sum of the hashes of the non-null values under ``path`` (0 where all are null)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    if pa.types.is_dictionary(array.type):
        return _dictionary_hashes(array, path)
    if pa.types.is_struct(array.type):
        total = np.zeros(len(array), _U64)
        for field, child in zip(array.type, array.flatten(), strict=True):  # flatten: the struct's nulls applied
            total += _value_hashes(child, f"{path}.{field.name}")
        return total
    hashed = _plain_hashes(array, path)
    if array.null_count:
        return np.where(_valid(array), hashed, _U64(0))
    return hashed.to_numpy() if isinstance(hashed, pl.Series) else hashed


def _dictionary_hashes(array: pa.DictionaryArray, path: str) -> np.ndarray:
    """A dictionary-encoded array's values hashed once each, then gathered by index: what hashing every decoded
    value gives, for a pass over the (few) distinct values instead of over every row's bytes."""
    if not len(array.dictionary):  # every index is null
        return np.zeros(len(array), _U64)
    distinct = _value_hashes(array.dictionary, path)  # 0 for a null value: adds nothing, like a null index
    indices = np.asarray(array.indices.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    hashed: np.ndarray = distinct[indices]
    if array.null_count:
        np.copyto(hashed, _U64(0), where=~_valid(array))
    return hashed


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _text_series_hashes(values: pl.Series, path: str) -> np.ndarray:
    """A Polars String column's values hashed as :func:`_plain_hashes` hashes them from Arrow, nulls left out."""
    hashed: np.ndarray = _hashed(values, path, _KIND_STRING).to_numpy()
    if values.null_count():
        return np.where(values.is_not_null().to_numpy(), hashed, _U64(0))
    return hashed


def row_hashes(rows: pa.Table | pa.RecordBatch, frame: pl.DataFrame | None = None) -> np.ndarray:
    """One uint64 per row: its canonical encoding's hash (the Polars hash of its values' hashes' sum).

    ``frame``, when given, holds the same rows in Polars (ETL's transformed chunk, from which ``rows`` was
    converted without changing a value): when its types are what ``rows`` converts to and Polars hashes them alike
    (:func:`hashes_in_polars`), the rows are hashed from it in one Polars select (:func:`frame_row_hashes`: a third
    less CPU than a pass per column here); else its String columns that are text in ``rows`` too are hashed as they
    are, not converted from Arrow back to Polars (the same values: the same hashes)."""
    if frame is not None and hashes_in_polars(rows.schema) and frame.schema == converted_schema(rows.schema):
        return frame_row_hashes(frame)
    total = np.zeros(rows.num_rows, _U64)
    polars_schema = frame.schema if frame is not None else {}
    for name, column in zip(rows.column_names, rows.columns, strict=True):
        if frame is not None and polars_schema.get(name) == pl.String and _is_text(column.type):
            total += _text_series_hashes(frame.get_column(name), name)
        else:
            total += _value_hashes(column, name)
    hashes: np.ndarray = pl.Series(total).hash(_ROW_SEED).to_numpy()
    return hashes


_NANOSECONDS = {"ns": 1, "us": 1_000, "ms": 1_000_000}


def hashes_in_polars(schema: pa.Schema) -> bool:
    """Whether the rows of a table of ``schema``, decoded by Polars, are hashed by :func:`frame_fingerprint` as
    :func:`fingerprint` hashes them from Arrow: top-level integers, 32- and 64-bit floats, booleans, text, binary,
    dates, timestamps in milli-, micro- or nanoseconds, and nulls (the types whose Polars form holds the same
    values; a struct, a list, a decimal, a dictionary ... is hashed from Arrow)."""

    def plain(t: pa.DataType) -> bool:
        if pa.types.is_timestamp(t):
            return t.unit in _NANOSECONDS
        simple = pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_null(t) or pa.types.is_date32(t)
        binary = pa.types.is_binary(t) or pa.types.is_large_binary(t)
        return simple or binary or pa.types.is_float32(t) or pa.types.is_float64(t) or _is_text(t)

    return len(schema) > 0 and all(plain(field.type) for field in schema)


def _polars_value_hashes(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """Column ``name``'s values hashed as :func:`_value_hashes` hashes them (0 for a null; ``None``: a column of
    nulls only, which adds nothing), in a Polars expression: integers as Int64 (an UInt64 past 2**63 wraps, as
    Arrow's unsafe cast does), timestamps in nanoseconds (wrapping too), dates in days."""
    column = pl.col(name)
    if dtype == pl.Null:
        return None
    if dtype == pl.UInt64:
        hashed = column.reinterpret(signed=True).hash(_salt(name) ^ _KIND_INT)
    elif dtype.is_integer() or dtype == pl.Boolean:
        hashed = column.cast(pl.Int64).hash(_salt(name) ^ _KIND_INT)
    elif dtype.is_float():
        hashed = _float_value_hashes(column, name)
    elif isinstance(dtype, pl.Datetime):
        nanoseconds = column.to_physical() * pl.lit(_NANOSECONDS[dtype.time_unit], pl.Int64)
        hashed = nanoseconds.hash(_salt(name) ^ _KIND_TIME)
    elif dtype == pl.Date:
        hashed = column.to_physical().cast(pl.Int64).hash(_salt(name) ^ _KIND_TIME)
    elif dtype == pl.String:
        hashed = column.hash(_salt(name) ^ _KIND_STRING)
    elif dtype == pl.Binary:
        hashed = column.hash(_salt(name) ^ _KIND_BINARY)
    else:
        raise TypeError(f"column {name!r}: values of Polars type {dtype} are hashed from Arrow")
    return pl.when(column.is_null()).then(pl.lit(0, pl.UInt64)).otherwise(hashed)


def _frame_row_hash(frame: pl.DataFrame) -> pl.Expr:
    values = [e for name, dtype in frame.schema.items() if (e := _polars_value_hashes(name, dtype)) is not None]
    row_sums = pl.sum_horizontal(values) if values else pl.repeat(pl.lit(0, pl.UInt64), frame.height)
    return row_sums.hash(_ROW_SEED)


def frame_row_hashes(frame: pl.DataFrame) -> np.ndarray:
    """:func:`row_hashes` of a Polars frame of the types :func:`hashes_in_polars` names, in one Polars select: the
    same hashes, without a pass in NumPy per column."""
    hashes: np.ndarray = _lazily(frame, _frame_row_hash(frame)).to_series().to_numpy()
    return hashes


def frame_fingerprint(frame: pl.DataFrame) -> int:
    """:func:`fingerprint` of a Polars frame of the types :func:`hashes_in_polars` names, in one Polars select (a
    third less CPU on text)."""
    return int(_lazily(frame, _frame_row_hash(frame).sum()).item() or 0)


def fingerprint(rows: pa.Table | pa.RecordBatch) -> int:
    """The sum, mod 2**64, of :func:`row_hashes`: the same for the same rows in any order, chunking or file split."""
    return int(row_hashes(rows).sum(dtype=_U64))


def combine(fingerprints: Iterable[int]) -> int:
    """The fingerprint of the rows of several tables together."""
    return sum(fingerprints) & MASK


def shown(value: int) -> str:
    """A fingerprint as stored in results: 16 hex digits (JSON numbers lose precision beyond 2**53)."""
    return f"{value:016x}"


def _sample_hashes() -> str:
    """A digest of the hashes of sample values of every kind: what names this Polars build's hash in
    :data:`ALGORITHM` (a build hashing any of them differently names another algorithm)."""
    sample = pa.table(
        {
            "n": pa.array([0, 1, -1, 2**63 - 1, None], pa.int64()),
            "x": pa.array([0.5, -0.0, float("nan"), float("inf"), 1e300]),
            "s": pa.array(["", "a", "é" * 40, "x" * 1000, None]),
            "b": pa.array([b"", b"\0", b"\xff" * 17, b"y" * 300, None]),
        }
    )
    digest = hashlib.blake2b(row_hashes(sample).tobytes(), digest_size=4).hexdigest()
    return digest


ALGORITHM = f"dbsnaplake-rowsum64-v2+{_sample_hashes()}+polars-{pl.__version__}+{platform.machine() or 'unknown'}"
"""Names the hash and everything its values depend on; fingerprints of different algorithms never compare."""
