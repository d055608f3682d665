"""Human byte sizes: parse ``128MB`` / ``1GiB`` / ``134217728`` and format them back."""

from __future__ import annotations

import re

from dbsnaplake.errors import ConfigError

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1024,
    "KIB": 1024,
    "M": 1024**2,
    "MB": 1024**2,
    "MIB": 1024**2,
    "G": 1024**3,
    "GB": 1024**3,
    "GIB": 1024**3,
    "T": 1024**4,
    "TB": 1024**4,
    "TIB": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Parse a byte size. Units are powers of 1024, as in Spark and Hive settings: ``128MB == 128MiB``.

    >>> parse_size("128MB"), parse_size("1GiB"), parse_size("134217728")
    (134217728, 1073741824, 134217728)
    """
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text)
        unit = match.group(2).upper() if match else None
        if match is None or unit not in _UNITS:
            raise ConfigError(
                f"cannot read size {text!r}: use bytes or a number with KB, MB, GB, TB (or KiB, MiB, ...), "
                "e.g. 128MB or 134217728"
            )
        value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ConfigError(f"size must be positive, got {text!r}")
    return value


def format_size(n_bytes: float) -> str:
    """Format a byte count for people: ``format_size(134217728) == '128.0 MiB'``."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
