"""Read snapshot data files: Parquet, CSV and newline-delimited JSON, plain or compressed (``.gz``, ``.zst``)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from . import storage
from .errors import SnapshotError

PARQUET, CSV, NDJSON = "parquet", "csv", "ndjson"
_EXTENSIONS = {
    ".parquet": PARQUET,
    ".pq": PARQUET,
    ".csv": CSV,
    ".tsv": CSV,
    ".ndjson": NDJSON,
    ".jsonl": NDJSON,
    ".json": NDJSON,
}
_COMPRESSION = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
SUPPORTED = "Parquet (.parquet), CSV (.csv, .tsv), NDJSON (.ndjson, .jsonl, .json); text formats may end in .gz or .zst"
IGNORED_NAMES = ("_SUCCESS", "_started", "_committed", ".crc", ".checksum")


@dataclass(frozen=True)
class FileFormat:
    kind: str
    compression: str | None = None


def detect_format(uri: str) -> FileFormat:
    """The format of a data file, from its name; unknown names raise a :class:`SnapshotError`."""
    name = storage.base_name(uri).lower()
    found = _format_of_suffixes("." + ".".join(name.rsplit(".", 2)[1:]))  # at most two suffixes matter
    if found is None:
        raise SnapshotError(f"unknown file format: {uri} — supported: {SUPPORTED}")
    return found


@functools.lru_cache(maxsize=256)
def _format_of_suffixes(name: str) -> FileFormat | None:
    compression = None
    for suffix, codec in _COMPRESSION.items():
        if name.endswith(suffix):
            compression, name = codec, name[: -len(suffix)]
            break
    for suffix, kind in _EXTENSIONS.items():
        if name.endswith(suffix):
            if kind == PARQUET and compression:
                break
            return FileFormat(kind, compression)
    return None


def is_ignorable(uri: str) -> bool:
    """Markers and checksums that exports leave beside data files, and hidden files."""
    name = storage.base_name(uri)
    return name.startswith((".", "_")) or name.endswith(IGNORED_NAMES)


@dataclass(frozen=True)
class ParquetFooter:
    schema: pa.Schema
    n_record: int
    uncompressed_size: int


def read_parquet_footer(uri: str, size: int | None = None) -> ParquetFooter:
    """Schema and row count from a Parquet footer: one ranged read, no data."""
    try:
        with storage.open_input_file(uri, size) as f:
            meta = pq.ParquetFile(f).metadata
            uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            return ParquetFooter(meta.schema.to_arrow_schema(), meta.num_rows, uncompressed)
    except FileNotFoundError:
        raise SnapshotError(f"file listed in the manifest is missing: {uri}") from None
    except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
        raise SnapshotError(f"{uri} is not a readable Parquet file (corrupt or truncated?): {exc}") from None


def read_table(uri: str, size: int | None = None) -> pa.Table:
    """Read one whole data file into an Arrow table (one GET on S3)."""
    fmt = detect_format(uri)
    try:
        if fmt.kind == PARQUET:
            if storage.is_s3(uri):
                return pq.read_table(pa.BufferReader(storage.read_bytes(uri)))
            return pq.read_table(uri, memory_map=True)
        stream: pa.NativeFile = pa.BufferReader(storage.read_bytes(uri))
        if fmt.compression:
            stream = pa.CompressedInputStream(stream, fmt.compression)
        if fmt.kind == CSV:
            delimiter = "\t" if ".tsv" in storage.base_name(uri).lower() else ","
            return pacsv.read_csv(stream, parse_options=pacsv.ParseOptions(delimiter=delimiter))
        return pajson.read_json(stream)
    except FileNotFoundError:
        raise SnapshotError(f"file listed in the manifest is missing: {uri}") from None
    except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
        raise SnapshotError(f"cannot read {uri} as {fmt.kind}: {exc}") from None


def count_records(uri: str, size: int | None = None) -> int:
    """Exact record count: from the footer for Parquet, by reading the data for text formats."""
    if detect_format(uri).kind == PARQUET:
        return read_parquet_footer(uri, size).n_record
    return int(read_table(uri, size).num_rows)


# ---- source readers: how the ETL stage reads files of a known export ----------------------------------------

ON_BAD_VALUE = ("error", "null")
SOURCE_READERS: dict[str, str] = {
    # the snapshot manifest's ``reader.format`` → "module:function", imported on first use (in the worker)
}


@dataclass(frozen=True)
class FileToRead:
    """One snapshot file as its manifest row describes it."""

    uri: str
    size: int | None
    expected_records: int | None
    extras: Mapping[str, Any] = field(default_factory=dict)
    """The row's other columns (an export's checksum, batch, ...)."""


@dataclass(frozen=True)
class ReadResult:
    table: pa.Table
    n_bad_value: int = 0
    """Values that did not parse as their type and became null (``--on-bad-value null``)."""


SourceReader = Callable[[FileToRead, Mapping[str, Any], str], ReadResult]


def read_snapshot_file(file: FileToRead, reader: Mapping[str, Any] | None, on_bad_value: str = "error") -> ReadResult:
    """Read one snapshot file the way its source says (the manifest's ``reader``), else by its name's suffix."""
    name = (reader or {}).get("format")
    if not name:
        return ReadResult(read_table(file.uri, file.size))
    if name not in SOURCE_READERS:
        known = ", ".join(sorted(SOURCE_READERS)) or "none"
        raise SnapshotError(f"the snapshot manifest names reader format {name!r}, which is not known (known: {known})")
    assert reader is not None
    return _source_reader(name)(file, reader, on_bad_value)


@functools.cache
def _source_reader(name: str) -> SourceReader:
    module, _, function = SOURCE_READERS[name].partition(":")
    reader: SourceReader = getattr(importlib.import_module(module), function)
    return reader
