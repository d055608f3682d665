"""The data lake's column types: what each Arrow type of a snapshot becomes, by one set of rules.

The ETL stage transforms with Polars, which has fewer types than Arrow (one string type, one list type, time only
in nanoseconds, no date64, no decimal256). So every file goes through three steps:

1. :func:`for_polars`: dictionary columns are decoded and ``decimal256`` (at most 38 digits) becomes ``decimal128``;
   types Polars cannot hold at all are refused, naming the column (:func:`refuse_unsupported`).
2. the transform (or none).
3. :func:`to_lake`: a column the transform left in the type Polars gave it (by name and type) takes back the lake
   type of its *source* type; a column the transform made or changed keeps its own type, with Polars' large types
   made plain (``large_string`` → ``string``, ``large_binary`` → ``binary``, ``large_list`` → ``list``).

The lake type of a type is what a Parquet file of that type reads back as in pyarrow (:func:`lake_type`), so staging
and lake files hold exactly the lake schema and readers see it too:

=================================  ===========================================================================
source type                        in the lake
=================================  ===========================================================================
string, large_string, binary,      unchanged (so are ints, floats, bool, date32, time64, duration, decimal32/64/128,
large_binary, fixed_size_binary,   null, list, large_list, fixed_size_list, struct and map, with their items
null, list, struct, map, ...       mapped by these same rules)
dictionary<values=T>               T (the encoding is how one file stored it; Parquet dictionary-encodes anyway)
date64                             date32 (Parquet's DATE counts days)
time32[s]                          time32[ms] (Parquet's TIME has no seconds unit)
timestamp[s]                       timestamp[ms] (Parquet's TIMESTAMP has no seconds unit); zone kept
timestamp[ns]                      timestamp[us] (zone kept) when every value is a whole microsecond: Spark,
                                   Trino/Athena and pyiceberg refuse TIMESTAMP(NANOS); else an error naming the
                                   column, unless ``--keep-nanoseconds`` (then timestamp[ns])
decimal256(p <= 38)                unchanged (the transform sees decimal128)
decimal256(p > 38), intervals,     refused at plan (or when read): Polars cannot hold them, Parquet cannot store
unions, run-end encoded, views     the others — cast them to a supported type in the source
=================================  ===========================================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import polars as pl
import pyarrow as pa

from dbsnaplake.errors import SnapshotError, TransformError

MAX_POLARS_DECIMAL_DIGITS = 38
KEEP_NANOSECONDS_FLAG = "--keep-nanoseconds"


def _map_type(t: pa.DataType, leaf: Callable[[pa.DataType], pa.DataType]) -> pa.DataType:
    """``t`` with ``leaf`` applied to it and, inside nested types, to every item type."""
    if pa.types.is_dictionary(t):
        return _map_type(t.value_type, leaf)
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(_map_type(t.value_type, leaf)), t.list_size)
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_map_type(t.value_type, leaf)))
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_map_type(t.value_type, leaf)))
    if pa.types.is_map(t):
        return pa.map_(
            t.key_field.with_type(_map_type(t.key_type, leaf)),
            t.item_field.with_type(_map_type(t.item_type, leaf)),
            t.keys_sorted,
        )
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_map_type(f.type, leaf)) for f in t])
    return leaf(t)


def _unsupported_reason(t: pa.DataType) -> str | None:
    if pa.types.is_decimal256(t) and t.precision > MAX_POLARS_DECIMAL_DIGITS:
        return f"has more than {MAX_POLARS_DECIMAL_DIGITS} digits, which the transform (Polars) cannot hold"
    if pa.types.is_interval(t) or pa.types.is_union(t) or pa.types.is_run_end_encoded(t):
        return "has no Parquet type"
    if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return "is a list view, which the transform (Polars) cannot read"
    return None


def refuse_unsupported(schema: pa.Schema, where: str) -> None:
    """Raise a :class:`SnapshotError` naming the first column (of ``where``) whose type the lake cannot take."""
    problems: list[str] = []

    def check(t: pa.DataType) -> pa.DataType:
        reason = _unsupported_reason(t)
        if reason:
            problems.append(f"{t} {reason}")
        return t

    for f in schema:
        _map_type(f.type, check)
        if problems:
            raise SnapshotError(
                f"column {f.name!r} of {where} is {f.type}: {problems[0]} — cast it to a supported type in the "
                "source (decimal(38, s), string, ...)"
            )


def _polars_leaf(t: pa.DataType) -> pa.DataType:
    if pa.types.is_decimal256(t):
        return pa.decimal128(t.precision, t.scale)
    return t


def polars_input_type(t: pa.DataType) -> pa.DataType:
    """The type a column is given to Polars as: dictionaries decoded, decimal256 as decimal128."""
    return _map_type(t, _polars_leaf)


def for_polars(table: pa.Table, where: str) -> pa.Table:
    """``table`` with every column in a type Polars reads without loss (see :func:`polars_input_type`)."""
    refuse_unsupported(table.schema, where)
    for i, f in enumerate(table.schema):
        wanted = polars_input_type(f.type)
        if wanted != f.type:
            table = table.set_column(i, f.with_type(wanted), table.column(i).cast(wanted))
    return table


@functools.lru_cache(maxsize=256)
def converted_schema(schema: pa.Schema) -> pl.Schema:
    """The Polars schema of a table of ``schema`` converted (``pl.from_arrow``)."""
    empty = pl.from_arrow(schema.empty_table())
    assert isinstance(empty, pl.DataFrame)
    return empty.schema


@functools.lru_cache(maxsize=512)
def polars_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type a column of type ``t`` comes back from Polars as, when the transform leaves it alone."""
    empty = pl.from_arrow(pa.table({"x": pa.array([], polars_input_type(t))}))
    assert isinstance(empty, pl.DataFrame)
    return empty.to_arrow(compat_level=pl.CompatLevel.oldest()).schema.field(0).type


def _lake_leaf(keep_nanoseconds: bool) -> Callable[[pa.DataType], pa.DataType]:
    def leaf(t: pa.DataType) -> pa.DataType:
        if pa.types.is_timestamp(t) and t.unit == "ns" and not keep_nanoseconds:
            return pa.timestamp("us", t.tz)
        if pa.types.is_timestamp(t) and t.unit == "s":
            return pa.timestamp("ms", t.tz)
        if pa.types.is_date64(t):
            return pa.date32()
        if pa.types.is_time32(t) and t.unit == "s":
            return pa.time32("ms")
        return t

    return leaf


def lake_type(t: pa.DataType, keep_nanoseconds: bool = False) -> pa.DataType:
    """The type a column of source type ``t`` has in the lake (the table in this module's docstring): a type that
    a Parquet file stores and pyarrow reads back as it is (a test checks every type)."""
    return _map_type(t, _lake_leaf(keep_nanoseconds))


def _plain_leaf(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    return t


def plain_polars_type(t: pa.DataType) -> pa.DataType:
    """A type the transform made, with Polars' large types plain: ``large_string`` → ``string``, ..."""
    t = _map_type(t, _plain_leaf)
    return _relist(t)


def _relist(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_list(t):
        return pa.list_(t.value_field.with_type(_relist(t.value_type)))
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        size = t.list_size if pa.types.is_fixed_size_list(t) else -1
        return pa.list_(t.value_field.with_type(_relist(t.value_type)), size)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_relist(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(t.key_field.with_type(_relist(t.key_type)), t.item_field.with_type(_relist(t.item_type)))
    return t


def output_lake_type(name: str, out_type: pa.DataType, source: pa.Schema, keep_nanoseconds: bool) -> pa.DataType:
    """The lake type of the transform's output column ``name``: its source's, when the transform left it alone."""
    index = source.get_field_index(name)
    if index >= 0 and polars_type(source.field(index).type) == out_type:
        return lake_type(source.field(index).type, keep_nanoseconds)
    return lake_type(plain_polars_type(out_type), keep_nanoseconds)


def lake_schema(out: pa.Schema, source: pa.Schema, keep_nanoseconds: bool) -> pa.Schema:
    """The lake schema of a transform's output schema ``out``, given the snapshot's schema ``source``."""
    return pa.schema([f.with_type(output_lake_type(f.name, f.type, source, keep_nanoseconds)) for f in out])


def to_lake(out: pa.Table, source: pa.Schema, keep_nanoseconds: bool, where: str) -> pa.Table:
    """The transform's output ``out`` in the lake's types (see :func:`lake_schema`); a value its lake type cannot
    hold (a nanosecond, a time the transform moved off the source's unit) is an error naming the column."""
    schema = lake_schema(out.schema, source, keep_nanoseconds)
    columns = []
    for f, column in zip(schema, out.columns, strict=True):
        if column.type == f.type:
            columns.append(column)
            continue
        try:
            columns.append(column.cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise _cast_error(f.name, column.type, f.type, where, exc) from None
    return pa.Table.from_arrays(columns, schema=schema)


def _cast_error(name: str, found: pa.DataType, wanted: pa.DataType, where: str, exc: Exception) -> Exception:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    if "ns" in str(found) and "timestamp" in str(wanted):
        return SnapshotError(
            f"column {name!r} of {where} holds timestamps with nanoseconds ({first_line}), which the lake's "
            f"{wanted} cannot hold (Spark, Trino/Athena and pyiceberg do not read nanoseconds by default): pass "
            f"{KEEP_NANOSECONDS_FLAG} to keep nanoseconds, or truncate them in --transform"
        )
    return TransformError(
        f"column {name!r} of {where} comes out of the transform as {found}, whose values its lake type {wanted} "
        f"cannot hold ({first_line}): cast the column in --transform to the type it should have"
    )
