"""Schema drift, unified the way DuckDB's ``union_by_name`` does it.

Columns are matched by name; a column missing from a file is null there; null-only columns take the other
files' type; numbers widen (int32 + int64 → int64, int + float → float64, decimals widen); timestamps take the
finer unit. Types that cannot be unified (string vs int, timestamp with vs without a zone, decimals whose union
needs more than 38 digits such as decimal(38, 0) and decimal(38, 10), ...) raise :class:`SchemaConflictError`
naming the column and both files.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pyarrow as pa

from dbsnaplake.errors import SchemaConflictError, SnapshotError

MAX_DECIMAL_DIGITS = 38


def _plain_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _plain_type(t.value_type)
    return t


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """Drop metadata and dictionary encoding: what a column holds, not how one file stored it."""
    return pa.schema([pa.field(f.name, _plain_type(f.type), nullable=True) for f in schema])


def unify(named_schemas: Sequence[tuple[str, pa.Schema]]) -> pa.Schema:
    """Unify ``(source, schema)`` pairs by column name; conflicts name both sources."""
    unified: pa.Schema | None = None
    origin: dict[str, str] = {}
    for source, raw in named_schemas:
        schema = plain_schema(raw)
        previous = unified
        if unified is None:
            unified = schema
        else:
            try:
                unified = pa.unify_schemas([unified, schema], promote_options="permissive")
            except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise _conflict(unified, schema, origin, source) from None
            _refuse_overwide_decimals(previous, schema, unified, origin, source)
        for f in schema:
            # remember the file that gave the column its current type, to name it in a conflict
            if f.name not in origin or (
                previous is not None and previous.field(f.name).type != unified.field(f.name).type
            ):
                origin[f.name] = source
    return unified if unified is not None else pa.schema([])


def _refuse_overwide_decimals(
    before: pa.Schema, schema: pa.Schema, unified: pa.Schema, origin: dict[str, str], source: str
) -> None:
    """Two decimals of at most 38 digits whose union needs more (decimal(38, 0) and decimal(38, 10) need 48) have no
    common type the transform (Polars) and most readers take: a conflict, not a silent decimal256."""
    for f in unified:
        if not pa.types.is_decimal(f.type) or f.type.precision <= MAX_DECIMAL_DIGITS:
            continue
        if f.name not in before.names or f.name not in schema.names:
            continue
        old, new = before.field(f.name).type, schema.field(f.name).type
        if _digits(old) > MAX_DECIMAL_DIGITS or _digits(new) > MAX_DECIMAL_DIGITS:
            continue
        raise SchemaConflictError(
            f"column {f.name!r} is {old} in {origin[f.name]} but {new} in {source}: a decimal holding both needs "
            f"{f.type.precision} digits, more than {MAX_DECIMAL_DIGITS} — cast the column to one type in the source "
            f"files (e.g. decimal({MAX_DECIMAL_DIGITS}, {f.type.scale}) if its whole part has at most "
            f"{MAX_DECIMAL_DIGITS - f.type.scale} digits)"
        )


def _digits(t: pa.DataType) -> int:
    return int(t.precision) if pa.types.is_decimal(t) else 0


def _conflict(unified: pa.Schema, schema: pa.Schema, origin: dict[str, str], source: str) -> SchemaConflictError:
    for f in schema:
        index = unified.get_field_index(f.name)
        if index < 0:
            continue
        old = unified.field(index)
        try:
            pa.unify_schemas([pa.schema([old]), pa.schema([f])], promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return SchemaConflictError(
                f"column {f.name!r} has incompatible types: {old.type} in {origin[f.name]} but {f.type} in "
                f"{source} — fix or drop the column in one of them (or cast it in --transform)"
            )
    return SchemaConflictError(f"schema of {source} cannot be unified with the files before it")


def conform(table: pa.Table, schema: pa.Schema, source: str) -> pa.Table:
    """Reorder, cast and null-fill ``table`` to ``schema`` (which must be the unified schema)."""
    if table.schema.equals(schema, check_metadata=True):  # a file of the snapshot's one schema: as it is
        return table
    columns = []
    for f in schema:
        if f.name in table.column_names:
            column = table[f.name]
            if column.type != f.type:
                try:
                    column = column.cast(f.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SnapshotError(f"column {f.name!r} of {source} cannot be read as {f.type}: {exc}") from None
            columns.append(column)
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def encode_schema(schema: pa.Schema) -> str:
    """A schema as text for a manifest summary (Arrow IPC, base64)."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
