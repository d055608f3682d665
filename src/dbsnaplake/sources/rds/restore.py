"""Restore the column types an RDS / Aurora snapshot export wrote as text, and read its files in the ETL stage.

An export of PostgreSQL writes DATE, TIMESTAMP, TIMESTAMPTZ, TIME and NUMERIC columns as UTF-8 strings; the
export's ``originalTypeMappings`` say what they were. A column is restored only when a file stores it as a
string *and* its original type is one of these:

=========================================  ===================================================================
original type                              restored as
=========================================  ===================================================================
``date``                                   ``date32``
``timestamp [without time zone]``          ``timestamp[us]``
``timestamptz``, ``timestamp with tz``     ``timestamp[us, tz=UTC]`` (values without an offset are read as UTC)
``time without time zone``                 ``time64[us]``
``numeric(p, s)``, ``decimal(p, s)``       ``decimal128(p, s)`` for p ≤ 38 (see :func:`decimal_scale`)
=========================================  ===================================================================

Everything else keeps the type the file has: integers, floats and booleans are exported as such; JSON(B),
UUID, INTERVAL, arrays, ``timetz`` and ``money`` stay strings. A ``numeric`` without a precision (any number
of digits) or above 38 digits stays a string, lossless: cast it in the transform if you know its range.

A value that does not parse (``infinity``, a BC date, ``NaN`` in a numeric, more fraction digits than the
scale) is an error naming table, column, file and value, or — with ``--on-bad-value null`` — a null that is
counted. Parsing is vectorized (Polars, ``strict=False``); bad values are the non-null inputs whose output is
null.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from dbsnaplake.errors import SnapshotError
from dbsnaplake.frames.readers import FileToRead, ReadResult, read_table
from dbsnaplake.records import ColumnRestore, SnapshotReader

READER_FORMAT = "rds-parquet"
"""The snapshot manifest's ``reader.format`` for RDS exports (see :mod:`dbsnaplake.sources.readers`)."""

DATE, TIMESTAMP, TIMESTAMPTZ, TIME, DECIMAL = "date", "timestamp", "timestamptz", "time", "decimal"
_KINDS = {
    "date": DATE,
    "timestamp": TIMESTAMP,
    "timestamp without time zone": TIMESTAMP,
    "datetime": TIMESTAMP,
    "timestamptz": TIMESTAMPTZ,
    "timestamp with time zone": TIMESTAMPTZ,
    "time without time zone": TIME,  # not MySQL's "time", a duration that may pass 24:00:00
    "numeric": DECIMAL,
    "decimal": DECIMAL,
}
MAX_DECIMAL_PRECISION = 38
_ARGS = re.compile(r"\(([^)]*)\)")
_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]*)?$")

_DATE_FORMAT = "%Y-%m-%d"
_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f")  # PostgreSQL prints a space; ISO a "T"
_AWARE_FORMATS = tuple(f + "%#z" for f in _NAIVE_FORMATS)  # +00, +0530, +05:30, Z
_TIME_FORMAT = "%H:%M:%S%.f"


@dataclass(frozen=True)
class OriginalColumn:
    """One entry of an export's ``schemaMetadata.originalTypeMappings``."""

    name: str
    original_type: str
    exported_type: str | None = None
    char_max_length: int | None = None
    num_precision: int | None = None
    num_scale: int | None = None
    """Not in the field list AWS documents; used when an export has it."""
    datetime_precision: int | None = None


def arrow_type(restore: ColumnRestore) -> pa.DataType:
    """The Arrow type a column is restored to."""
    if restore.kind == DECIMAL:
        assert restore.precision is not None and restore.scale is not None
        return pa.decimal128(restore.precision, restore.scale)
    return {
        DATE: pa.date32(),
        TIMESTAMP: pa.timestamp("us"),
        TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
        TIME: pa.time64("us"),
    }[restore.kind]


def type_kind(original_type: str) -> tuple[str | None, tuple[int, ...]]:
    """``"numeric(12,2)"`` → ``("decimal", (12, 2))``; ``"timestamp(3) with time zone"`` → ``("timestamptz", (3,))``;
    a type this module does not restore → ``(None, ...)``."""
    text = original_type.strip().lower()
    match = _ARGS.search(text)
    args: tuple[int, ...] = ()
    if match:
        try:
            args = tuple(int(a) for a in match.group(1).split(",") if a.strip())
        except ValueError:
            args = ()
        text = _ARGS.sub("", text)
    return _KINDS.get(" ".join(text.split())), args


def decimal_scale(column: OriginalColumn, args: tuple[int, ...], samples: Iterable[str]) -> int | None:
    """The scale of a numeric column: from ``numeric(p,s)`` in the original type, else from the export's scale
    field, else from sample values (Parquet footer min/max statistics). PostgreSQL prints a ``numeric(p,s)``
    value with exactly ``s`` fraction digits, so every sample must agree; ``None`` when nothing tells."""
    if len(args) == 2:
        return args[1]
    if len(args) == 1:
        return 0  # numeric(p) is numeric(p, 0)
    if column.num_scale is not None:
        return column.num_scale
    scales = {len(v.partition(".")[2]) for v in samples if _NUMBER.match(v)}  # NaN, Infinity say nothing
    return scales.pop() if len(scales) == 1 else None


def plan_restores(
    columns: Sequence[OriginalColumn], schema: pa.Schema, samples: Mapping[str, Sequence[str]]
) -> tuple[list[ColumnRestore], list[str]]:
    """Which columns of ``schema`` (the files' unified footer schema) to restore, and notes on the columns that
    stay strings although their original type is one this module knows."""
    restores: list[ColumnRestore] = []
    notes: list[str] = []
    for column in columns:
        kind, args = type_kind(column.original_type)
        index = schema.get_field_index(column.name)
        if kind is None or index < 0 or not is_text(schema.field(index).type):
            continue  # exported as its own type already (MySQL dates, integers), or nothing to restore
        if kind != DECIMAL:
            restores.append(ColumnRestore(column.name, column.original_type, kind))
            continue
        precision = args[0] if args else column.num_precision
        where = f"column {column.name!r} ({column.original_type}"
        if not precision:
            notes.append(
                f"{where} without a precision) stays a string: it can hold any number of digits — "
                f"cast it in the transform if you know its range, e.g. CAST({column.name} AS DECIMAL(18, 2))"
            )
            continue
        if precision > MAX_DECIMAL_PRECISION:
            notes.append(f"{where}, precision {precision}) stays a string: decimals hold at most 38 digits")
            continue
        scale = decimal_scale(column, args, samples.get(column.name, ()))
        if scale is None or not 0 <= scale <= precision:
            notes.append(
                f"{where}, precision {precision}) stays a string: the export does not say its scale and the "
                f"files' statistics do not show it — cast it in the transform, e.g. "
                f"CAST({column.name} AS DECIMAL({precision}, 2))"
            )
            continue
        restores.append(ColumnRestore(column.name, column.original_type, DECIMAL, precision, scale))
    return restores, notes


def is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def restored_schema(schema: pa.Schema, restores: Sequence[ColumnRestore]) -> pa.Schema:
    """The footer schema with the restored columns' types."""
    types = {r.name: arrow_type(r) for r in restores}
    return pa.schema([pa.field(f.name, types.get(f.name, f.type), nullable=True) for f in schema])


# ---- parsing, in the ETL workers ------------------------------------------------------------------------------


def _parse(series: pl.Series, restore: ColumnRestore) -> pl.Series:
    if restore.kind == DATE:
        return series.str.to_date(_DATE_FORMAT, strict=False)
    if restore.kind == TIME:
        return series.str.to_time(_TIME_FORMAT, strict=False)
    if restore.kind == TIMESTAMP:
        return _parse_lazily(series, [lambda f=f: _naive(series, f) for f in _NAIVE_FORMATS])
    if restore.kind == TIMESTAMPTZ:
        parsers = [lambda f=f: _aware(series, f) for f in _AWARE_FORMATS]
        parsers += [lambda f=f: _naive(series, f).dt.replace_time_zone("UTC") for f in _NAIVE_FORMATS]
        return _parse_lazily(series, parsers)
    assert restore.precision is not None and restore.scale is not None
    # only plain decimals with at most `scale` significant fraction digits: a cast would silently cut the others
    fraction = rf"(\.[0-9]{{0,{restore.scale}}}0*)?" if restore.scale else r"(\.0*)?"
    valid = series.str.contains(rf"^[+-]?[0-9]+{fraction}$")
    plain = series.set(~valid.fill_null(False), None)
    return plain.cast(pl.Decimal(restore.precision, restore.scale), strict=False)  # too many digits → null


def _naive(series: pl.Series, fmt: str) -> pl.Series:
    return series.str.to_datetime(fmt, time_unit="us", strict=False)


def _aware(series: pl.Series, fmt: str) -> pl.Series:
    return series.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)


def _parse_lazily(series: pl.Series, parsers: Sequence[Any]) -> pl.Series:
    """Try the formats in order, the next only while some values are still unparsed."""
    out: pl.Series = parsers[0]()
    for parser in parsers[1:]:
        if not (series.is_not_null() & out.is_null()).any():
            break
        out = out.zip_with(out.is_not_null(), parser())  # each value from the first format that parses it
    return out


def restore_column(values: pa.Array | pa.ChunkedArray, restore: ColumnRestore) -> tuple[pa.Array, pl.Series]:
    """The column parsed into its original type, and the mask of values that did not parse (now null)."""
    series = pl.Series(restore.name, values)
    if series.dtype != pl.String:
        series = series.cast(pl.String)
    parsed = _parse(series, restore)
    bad = series.is_not_null() & parsed.is_null()
    return parsed.to_arrow().cast(arrow_type(restore), safe=False), bad  # a time's ns → us (PostgreSQL prints µs)


def read_file(file: FileToRead, reader: SnapshotReader, on_bad_value: str) -> ReadResult:
    """Read one export file with its string columns restored (the ``rds-parquet`` source reader)."""
    table = read_table(file.uri, file.size)
    n_bad = 0
    for restore in reader.columns:
        index = table.schema.get_field_index(restore.name)
        if index < 0 or not is_text(table.schema.field(index).type):
            continue
        restored, bad = restore_column(table.column(index), restore)
        n = int(bad.sum())
        if n and on_bad_value != "null":
            value = table.column(index)[int(bad.arg_true()[0])].as_py()
            raise SnapshotError(
                f"table {reader.table or '?'}, column {restore.name!r} ({restore.original_type}), "
                f"file {file.uri}: {value!r} does not parse as {restore.original_type} ({arrow_type(restore)}; "
                f"{n} such value(s) in this file) — fix the source, or run with --on-bad-value null to store them as null and count them"
            )
        n_bad += n
        table = table.set_column(index, pa.field(restore.name, restored.type), restored)
    return ReadResult(table, n_bad)
