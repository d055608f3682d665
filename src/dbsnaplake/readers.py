"""Read snapshot data files: Parquet, CSV and newline-delimited JSON, plain or compressed (``.gz``, ``.zst``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

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
