"""Parquet snapshot files decoded by Polars, straight into the frame the transform takes.

ETL transforms rows in Polars. A Parquet file read by pyarrow and converted (:func:`~dbsnaplake.frames.types.
for_polars`, ``pl.from_arrow``) costs about twice what Polars' own decoder takes for the same file (measured: 2.5x
the CPU on the benchmark's files, text columns built once instead of twice). Polars decodes a file here when its
columns are of the types whose Polars form is what the conversion gives (:func:`decodes_alike`): top-level
integers, booleans, 32- and 64-bit floats, text, binary, dates and timestamps (milli-, micro- or nanoseconds, no
zone or UTC), stored as Parquet's plain physical types (no INT96, no fixed-length bytes). Any other file, one
Polars refuses or decodes to other types (a date64 column, which pyarrow reads as a date), is read by pyarrow as
before; a test compares the two decoders' frames over every type.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dbsnaplake.frames.types import converted_schema, polars_input_type

PLAIN_PHYSICAL_TYPES = frozenset({"BOOLEAN", "INT32", "INT64", "FLOAT", "DOUBLE", "BYTE_ARRAY"})


@dataclass(frozen=True)
class PolarsRead:
    """A snapshot file's rows decoded by Polars, and the Arrow schema pyarrow reads the file as (what the lake's
    types are made from)."""

    frame: pl.DataFrame
    schema: pa.Schema
    n_bad_value: int = 0

    @property
    def num_rows(self) -> int:
        return self.frame.height

    @functools.cached_property
    def nbytes(self) -> int:
        return int(self.frame.estimated_size())


@functools.lru_cache(maxsize=256)
def _plain(t: pa.DataType) -> bool:
    if pa.types.is_timestamp(t):
        return t.unit in ("ms", "us", "ns") and t.tz in (None, "UTC")
    if not (
        pa.types.is_integer(t)
        or pa.types.is_boolean(t)
        or pa.types.is_float32(t)
        or pa.types.is_float64(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_date32(t)
    ):
        return False
    return bool(polars_input_type(t) == t)


def decodes_alike(parquet: pq.ParquetFile) -> bool:
    """Whether Polars decodes the file into the frame that pyarrow's read and the conversion to Polars give."""
    schema, columns = parquet.schema_arrow, parquet.schema
    if not len(schema) or len(columns) != len(schema) or len(set(schema.names)) != len(schema):
        return False  # no columns, nested columns (more leaves than fields) or names twice: pyarrow's to handle
    for i, field in enumerate(schema):
        column = columns.column(i)
        if column.physical_type not in PLAIN_PHYSICAL_TYPES or column.max_repetition_level:
            return False
        if not _plain(field.type):
            return False
    return True


def read_in_polars(source: str | bytes, expected: pa.Schema | None = None) -> PolarsRead | None:
    """The Parquet file ``source`` (a local path, or the file's bytes) decoded by Polars; ``None`` when pyarrow is
    to read it: types :func:`decodes_alike` does not vouch for, another schema than ``expected`` (the group's, to
    which pyarrow's read is conformed), or a file Polars refuses (pyarrow's error is then the one reported)."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(source) if isinstance(source, bytes) else source)
        if not decodes_alike(parquet) or (expected is not None and not expected.equals(parquet.schema_arrow)):
            return None
        frame = pl.read_parquet(source, glob=False, hive_partitioning=False)  # the file named, as it is named
    except (pa.ArrowException, OSError, pl.exceptions.PolarsError):
        return None
    if frame.height != parquet.metadata.num_rows or frame.schema != converted_schema(parquet.schema_arrow):
        return None  # e.g. a date64 column: pyarrow reads it as date32, Polars as a datetime
    return PolarsRead(frame, parquet.schema_arrow)
