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
  (so int32 → int64 → float64 widening keeps the hash), other floats by their float64 bits (one NaN), decimals
  by their digits without trailing zeros, times and timestamps in nanoseconds, dates in days, every string type
  (dictionary-encoded or not) as its UTF-8 bytes, every binary type as its bytes;
- list elements are hashed with their position; a list's hash covers its length.

Everything is vectorised (NumPy on Arrow buffers; Polars hashes string and binary values). Polars only promises
a stable string hash within one Polars version (on one kind of processor), so every fingerprint is stored with
:data:`ALGORITHM`, which names the Polars version and the processor architecture; validation refuses to compare
fingerprints made by different algorithms (run ETL and validation with the same versions, or rerun with --fresh).
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

ALGORITHM = f"dbsnaplake-rowsum64-v1+polars-{pl.__version__}+{platform.machine() or 'unknown'}"
"""Names the hash and everything its values depend on; fingerprints of different algorithms never compare."""

MASK = (1 << 64) - 1
_STRING_SEED = 0x5EED_0001
_U64 = np.uint64
_KIND_INT, _KIND_FLOAT, _KIND_STRING, _KIND_BINARY, _KIND_DECIMAL, _KIND_TIME, _KIND_LIST = (
    _U64(0x9E3779B97F4A7C15 * k & MASK) for k in range(1, 8)
)
_POSITION = _U64(0xD6E8FEB86659FD93)
_MIX_1, _MIX_2 = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)
HASH_BLOCK_ROWS = 65_536
"""Rows of a column hashed at a time: the dozen arrays each step makes stay in the processor's cache instead of
going through memory (a lake file of 3.5 M rows: 0.8 s -> 0.5 s)."""


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise on uint64 (wrapping arithmetic), in place: ``values`` (an array the
    caller owns) is overwritten and returned. In place, no step allocates a new array: several times faster."""
    shifted = np.empty_like(values)
    for shift, multiplier in ((30, _MIX_1), (27, _MIX_2)):
        np.right_shift(values, shift, out=shifted)
        np.bitwise_xor(values, shifted, out=values)
        np.multiply(values, multiplier, out=values)
    np.right_shift(values, 31, out=shifted)
    np.bitwise_xor(values, shifted, out=values)
    return values


@functools.lru_cache(maxsize=4096)
def _salt(path: str) -> np.uint64:
    """A fixed 64-bit number per column path (BLAKE2b: the same in every process and on every machine)."""
    return _U64(int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "little"))


def _valid(array: pa.Array) -> np.ndarray:
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _int64_bits(array: pa.Array) -> np.ndarray:
    values = pc.cast(array, pa.int64(), safe=False).fill_null(0)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64).view(_U64)


def _integer_hashes(array: pa.Array) -> np.ndarray:
    return _int64_bits(array) ^ _KIND_INT


def _float_hashes(array: pa.Array) -> np.ndarray:
    """Integral floats hash as the integer they equal; the others by their float64 bits (every NaN alike)."""
    floats = np.asarray(pc.cast(array, pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(floats) & (floats == np.trunc(floats)) & (np.abs(floats) < 2.0**63)
    as_int = np.where(integral, floats, 0.0).astype(np.int64).view(_U64) ^ _KIND_INT
    bits = np.where(np.isnan(floats), np.float64("nan"), floats).view(_U64) ^ _KIND_FLOAT
    result: np.ndarray = np.where(integral, as_int, bits)
    return result


def _bytes_hashes(array: pa.Array, kind: np.uint64) -> np.ndarray:
    hashed = np.asarray(pl.Series(array).hash(_STRING_SEED).to_numpy(), dtype=_U64)
    return hashed ^ kind


def _decimal_hashes(array: pa.Array) -> np.ndarray:
    """By the digits, trailing zeros dropped: ``1.50`` (decimal(10,2)) and ``1.500`` (decimal(12,3)) are one value."""
    text = pc.cast(array, pa.large_string())
    text = pc.replace_substring_regex(text, r"(\.\d*?)0+$", r"\1")
    text = pc.replace_substring_regex(text, r"\.$", "")
    return _bytes_hashes(text, _KIND_DECIMAL)


def _time_hashes(array: pa.Array, unit_type: pa.DataType) -> np.ndarray:
    """Times, timestamps and durations in nanoseconds, dates in days: as integers of one unit."""
    in_unit = pc.cast(array, unit_type, safe=False)
    integers = in_unit.view(pa.int32() if pa.types.is_date32(unit_type) else pa.int64())
    return _int64_bits(integers) ^ _KIND_TIME


def _list_hashes(array: pa.Array, path: str) -> np.ndarray:
    """Each list's hash: its elements' hashes, each mixed with its position, summed, and its length. A map is
    the list of its entries (``key``, ``value`` structs)."""
    if pa.types.is_map(array.type):
        entry = pa.struct([array.type.key_field, array.type.item_field])
        array = array.cast(pa.list_(entry))
    lengths = np.asarray(pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    elements = array.flatten()
    element_hashes = _mix(_value_hashes(elements, path + "[]") + _KIND_LIST)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    positions = np.arange(len(elements), dtype=np.int64) - np.repeat(starts[:-1], lengths)
    placed = _mix(element_hashes ^ (positions.astype(_U64) * _POSITION))
    sums = np.concatenate([np.zeros(1, _U64), np.cumsum(placed, dtype=_U64)])
    hashes: np.ndarray = (sums[starts[1:]] - sums[starts[:-1]]) ^ _mix(lengths.astype(_U64) ^ _KIND_LIST)
    return hashes


def _plain_hashes(array: pa.Array, path: str) -> np.ndarray:
    """Each value of a non-struct array as 64 bits, tagged by its kind (a string's: its hash); mixed with the
    column's salt by the caller, which also leaves nulls out."""
    t = array.type
    if pa.types.is_null(t):
        return np.zeros(len(array), _U64)
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return _integer_hashes(array)
    if pa.types.is_floating(t):
        return _float_hashes(array)
    if pa.types.is_decimal(t):
        return _decimal_hashes(array)
    if pa.types.is_timestamp(t):
        return _time_hashes(array, pa.timestamp("ns", t.tz))
    if pa.types.is_date(t):
        return _time_hashes(array, pa.date32())
    if pa.types.is_time(t):
        return _time_hashes(array, pa.time64("ns"))
    if pa.types.is_duration(t):
        return _time_hashes(array, pa.duration("ns"))
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _bytes_hashes(pc.cast(array, pa.large_string()), _KIND_STRING)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return _bytes_hashes(pc.cast(array, pa.large_binary()), _KIND_BINARY)
    if pa.types.is_fixed_size_binary(t):
        return _bytes_hashes(pc.cast(array, pa.large_binary()), _KIND_BINARY)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_map(t):
        return _list_hashes(array, path)
    raise TypeError(f"column {path!r}: cannot fingerprint values of type {t}")


def _value_hashes(array: pa.Array, path: str) -> np.ndarray:
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
    hashed = _plain_hashes(array, path)  # a new array: hashed in place from here on
    hashed ^= _salt(path)
    _mix(hashed)
    if array.null_count:
        np.copyto(hashed, _U64(0), where=~_valid(array))
    return hashed


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


def row_hashes(rows: pa.Table | pa.RecordBatch) -> np.ndarray:
    """One uint64 per row: its canonical encoding's hash. Columns are hashed :data:`HASH_BLOCK_ROWS` rows at a
    time (a dictionary-encoded one whole: its distinct values are hashed once)."""
    n_rows = rows.num_rows
    total = np.zeros(n_rows, _U64)
    for name, column in zip(rows.column_names, rows.columns, strict=True):
        if pa.types.is_dictionary(column.type) or n_rows <= HASH_BLOCK_ROWS:
            total += _value_hashes(column, name)
            continue
        for start in range(0, n_rows, HASH_BLOCK_ROWS):
            total[start : start + HASH_BLOCK_ROWS] += _value_hashes(column.slice(start, HASH_BLOCK_ROWS), name)
    return _mix(total)


def fingerprint(rows: pa.Table | pa.RecordBatch) -> int:
    """The sum, mod 2**64, of :func:`row_hashes`: the same for the same rows in any order, chunking or file split."""
    if isinstance(rows, pa.Table):
        return combine(fingerprint(batch) for batch in rows.to_batches())
    return int(row_hashes(rows).sum(dtype=_U64))


def combine(fingerprints: Iterable[int]) -> int:
    """The fingerprint of the rows of several tables together."""
    return sum(fingerprints) & MASK


def shown(value: int) -> str:
    """A fingerprint as stored in results: 16 hex digits (JSON numbers lose precision beyond 2**53)."""
    return f"{value:016x}"
