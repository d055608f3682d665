"""Hive partition paths: ``year=2021/month=01``, escaped exactly as Hive escapes them, and back."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from dbsnaplake.errors import ConfigError, SnapshotError

MAX_SEGMENT_BYTES = 255  # a folder name's limit on every common file system (S3 keys would allow more; readers not)
SHOWN_VALUE_CHARS = 40
DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"

# Hive's FileUtils.escapePathName: control characters and these.
_ESCAPED = set("\"#%'*/:=?\\\x7f{[]^") | {chr(c) for c in range(0x00, 0x20)}


def escape(text: str) -> str:
    """Escape one path segment the way Hive does: ``escape("a/b") == "a%2Fb"``."""
    return "".join(f"%{ord(ch):02X}" if ch in _ESCAPED else ch for ch in text)


def unescape(text: str) -> str:
    """Undo :func:`escape` exactly (``%XX`` with two hex digits; anything else is kept as it is)."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "%" and _is_hex(text[i + 1 : i + 3]):
            out.append(chr(int(text[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _is_hex(pair: str) -> bool:
    return len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair)


def format_value(value: Any) -> str:
    """The text of a partition value as Hive writes it; null and "" become the default partition."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DEFAULT_PARTITION
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
    else:
        text = str(value)
    return text if text else DEFAULT_PARTITION


def partition_path(keys: Sequence[str], values: Sequence[Any]) -> str:
    """``partition_path(["year", "month"], [2021, "01"]) == "year=2021/month=01"``; ``""`` without keys."""
    parts = []
    for key, value in zip(keys, values, strict=True):
        text = format_value(value)
        encoded = DEFAULT_PARTITION if text == DEFAULT_PARTITION else escape(text)
        segment = f"{escape(key)}={encoded}"
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise SnapshotError(
                f"partition column {key!r} has a value that makes a {len(segment.encode())}-byte folder name "
                f"({text[:SHOWN_VALUE_CHARS]!r}...), more than the {MAX_SEGMENT_BYTES} bytes a folder name may hold: "
                "partition by a shorter value made in --transform (a prefix, or a hash, of it)"
            )
        parts.append(segment)
    return "/".join(parts)


def parse_partition_path(path: str) -> dict[str, str | None]:
    """Decode ``k1=v1/k2=v2`` back into values (the default partition decodes to ``None``)."""
    values: dict[str, str | None] = {}
    for segment in filter(None, path.strip("/").split("/")):
        key, sep, raw = segment.partition("=")
        if not sep:
            raise ValueError(f"not a hive partition segment: {segment!r} in {path!r}")
        values[unescape(key)] = None if raw == DEFAULT_PARTITION else unescape(raw)
    return values


def check_no_empty_names(columns: Sequence[str], where: str) -> None:
    """An empty column name is renamed by every reader (Polars and DuckDB: ``column_<n>``): refuse it."""
    for index, name in enumerate(columns):
        if not name.strip():
            raise SnapshotError(
                f"{where} has an empty column name (column {index + 1} of {len(columns)}): readers would invent one "
                "(DuckDB: column_<n>) — name it in the source (CSV: --csv-column-names)"
            )


def check_column_names(columns: Sequence[str], partition_by: Sequence[str], where: str) -> None:
    """Refuse names a reader would change: an empty name (DuckDB reads it as ``column_<n>``), names that differ only
    in case (DuckDB, Spark, Hive and Athena match names case-insensitively: DuckDB reads the second as ``id_1``), and
    partition columns that cannot be a Hive folder name as they are (their escaped form is what readers give back)."""
    check_no_empty_names(columns, where)
    by_folded: dict[str, list[str]] = {}
    for name in columns:
        by_folded.setdefault(name.casefold(), []).append(name)
    clashes = [names for names in by_folded.values() if len(names) > 1]
    if clashes:
        shown = ", ".join(repr(n) for n in clashes[0])
        raise SnapshotError(
            f"{where} has columns {shown} that differ only in case: DuckDB, Spark and Athena match column names "
            "case-insensitively and would rename or drop one — rename one with --transform (e.g. "
            f'SELECT * EXCLUDE ("{clashes[0][0]}"), "{clashes[0][0]}" AS {clashes[0][0]}_2 FROM snapshot)'
        )
    for name in partition_by:
        if escape(name) != name or name in (".", ".."):
            raise ConfigError(
                f"partition column {name!r} cannot be a Hive folder name as it is (/, =, %, :, quotes and control "
                "characters are escaped, and readers give the escaped name back): name it with letters, digits and "
                "_ in --transform"
            )
