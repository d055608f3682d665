"""Hive partition paths: ``year=2021/month=01``, escaped exactly as Hive escapes them, and back."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

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
        parts.append(f"{escape(key)}={encoded}")
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
