"""Read snapshot data files: Parquet, CSV, NDJSON and JSON arrays, plain or compressed (``.gz``, ``.zst``)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.errors import ConfigError, SnapshotError
from dbsnaplake.records import CsvOptions, SnapshotReader

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
SUPPORTED = (
    "Parquet (.parquet), CSV (.csv, .tsv), NDJSON or JSON arrays (.ndjson, .jsonl, .json); "
    "text formats may end in .gz or .zst"
)
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


def refuse_duplicate_columns(schema: pa.Schema, uri: str) -> None:
    """A file with two columns of one name cannot become a table: a :class:`SnapshotError` naming both."""
    twice = sorted({name for name in schema.names if schema.names.count(name) > 1})
    if twice:
        raise SnapshotError(
            f"{uri} has more than one column named {', '.join(map(repr, twice))}: rename or drop the copies in "
            "that file (or leave it out of the snapshot)"
        )


@dataclass(frozen=True)
class ParquetFooter:
    schema: pa.Schema
    n_record: int
    uncompressed_size: int


def uncompressed_bytes(meta: pq.FileMetaData) -> int:
    """A Parquet file's data uncompressed (its row groups' total byte sizes), as its footer says."""
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def read_parquet_footer(uri: str, size: int | None = None) -> ParquetFooter:
    """Schema and row count from a Parquet footer: one ranged read, no data."""
    try:
        with storage.open_input_file(uri, size) as f:
            meta = pq.ParquetFile(f).metadata
            schema = meta.schema.to_arrow_schema()
            refuse_duplicate_columns(schema, uri)
            return ParquetFooter(schema, meta.num_rows, uncompressed_bytes(meta))
    except FileNotFoundError:
        raise SnapshotError(f"file listed in the manifest is missing: {uri}") from None
    except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
        raise SnapshotError(f"{uri} is not a readable Parquet file (corrupt or truncated?): {exc}") from None


# ---- column types, as a user spells them (CSV options) ------------------------------------------------------

_SIMPLE_TYPES: dict[str, pa.DataType] = {
    **{f"int{bits}": getattr(pa, f"int{bits}")() for bits in (8, 16, 32, 64)},
    **{f"uint{bits}": getattr(pa, f"uint{bits}")() for bits in (8, 16, 32, 64)},
    "float32": pa.float32(),
    "float": pa.float64(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "str": pa.string(),
    "utf8": pa.string(),
    "text": pa.string(),
    "varchar": pa.string(),
    "large_string": pa.large_string(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "date32": pa.date32(),
    "timestamp": pa.timestamp("us"),
}
_PARAMETRIC = re.compile(r"^(?P<name>[a-z0-9_]+)\s*[\[(]\s*(?P<args>[^\])]*)[\])]$")
TYPE_NAMES = (
    "int8..int64, uint8..uint64, float32, float64, bool, string, binary, date, timestamp[us, UTC], decimal(12,2)"
)


def parse_type(text: str) -> pa.DataType:
    """An Arrow type from its usual spelling: ``int64``, ``string``, ``decimal(12,2)``, ``timestamp[ms, UTC]``."""
    spelled = text.strip().lower()
    if spelled in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[spelled]
    match = _PARAMETRIC.match(spelled)
    if match:
        name = match["name"]
        args = [a.strip() for a in match["args"].split(",") if a.strip()]
        try:
            if name in ("decimal", "decimal128", "numeric") and 1 <= len(args) <= 2:
                precision, scale = int(args[0]), int(args[1]) if len(args) == 2 else 0
                return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
            if name == "timestamp" and 1 <= len(args) <= 2:
                zone = args[1].removeprefix("tz=").upper() if len(args) == 2 else None
                return pa.timestamp(args[0], zone)
        except (ValueError, pa.ArrowInvalid):
            pass
    raise ConfigError(f"unknown column type {text!r}: use one of {TYPE_NAMES}")


def csv_format(options: CsvOptions) -> CsvFormat:
    """How to parse CSV files, from what the user said (column types checked here)."""
    types = {}
    for column, spelled in options.column_types:
        try:
            types[column] = parse_type(spelled)
        except ConfigError as exc:
            raise ConfigError(f"--csv-column-types {column}={spelled}: {exc}") from None
    return CsvFormat(options.delimiter, options.header, options.column_names, types)


@dataclass(frozen=True)
class CsvFormat:
    """How CSV files are parsed; the defaults infer what they can from each file."""

    delimiter: str | None = None
    """``None``: the most frequent of ``, TAB ; |`` in the first line (a ``.tsv`` file's tie goes to TAB)."""
    header: bool | None = None
    """Whether the first row names the columns; ``None`` (decided when the manifest is built) reads as ``True``."""
    column_names: tuple[str, ...] = ()
    """Names for the columns, replacing the header (or naming a header-less file's ``f0, f1, ...``)."""
    column_types: Mapping[str, pa.DataType] = field(default_factory=dict)
    """Types of some columns instead of the inferred ones; the others are still inferred."""


SNIFF_BYTES = 64 * 1024
CSV_DELIMITERS = (",", "\t", ";", "|")


def _text_stream(data: bytes, compression: str | None) -> pa.NativeFile:
    stream: pa.NativeFile = pa.BufferReader(data)
    return pa.CompressedInputStream(stream, compression) if compression else stream


def text_head(uri: str, data: bytes | None = None) -> bytes:
    """The first 64 KiB of a text data file, decompressed."""
    fmt = detect_format(uri)
    raw = data if data is not None else storage.read_bytes(uri)
    head: bytes = _text_stream(raw, fmt.compression).read(SNIFF_BYTES)
    return head


def sniff_delimiter(head: bytes, default: str = ",") -> str:
    """The most frequent candidate delimiter in the first line, outside double quotes; ``default`` on a tie."""
    line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    unquoted = "".join(line.split('"')[::2])
    counts = {d: unquoted.count(d) for d in CSV_DELIMITERS}
    best = max(CSV_DELIMITERS, key=lambda d: (counts[d], d == default))
    return best if counts[best] else default


def _read_csv(uri: str, data: bytes, compression: str | None, csv: CsvFormat) -> pa.Table:
    default = "\t" if ".tsv" in storage.base_name(uri).lower() else ","
    head = _text_stream(data, compression).read(SNIFF_BYTES)
    if not head.strip():
        return pa.table({})  # a 0-byte (or blank) file: no rows, and no columns to name
    delimiter = csv.delimiter or sniff_delimiter(head, default)
    header = csv.header is not False
    read_options = pacsv.ReadOptions(
        column_names=list(csv.column_names) or None,
        autogenerate_column_names=not header and not csv.column_names,
        skip_rows=1 if header and csv.column_names else 0,
    )
    return pacsv.read_csv(
        _text_stream(data, compression),
        read_options=read_options,
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(column_types=dict(csv.column_types)),
    )


_ZONED = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def _read_json(
    uri: str, data: bytes, compression: str | None, column_types: Mapping[str, pa.DataType] | None = None
) -> pa.Table:
    """NDJSON, or a JSON array of objects (a file whose first non-space byte is ``[``); ``column_types`` instead of
    the inferred types for some columns."""
    head = _text_stream(data, compression).read(SNIFF_BYTES).lstrip()
    if not head:
        return pa.table({})
    if head[:1] == b"[":
        rows = json.loads(_text_stream(data, compression).read())
        if not all(isinstance(row, dict) for row in rows):
            raise SnapshotError(f"{uri} is a JSON array whose items are not all objects: expected [{{...}}, {{...}}]")
        if not rows:
            return pa.table({})
        data, compression = b"\n".join(json.dumps(row).encode() for row in rows), None  # same type inference
    types = dict(column_types or {})
    options = pajson.ParseOptions(explicit_schema=pa.schema(types)) if types else None
    table = pajson.read_json(_text_stream(data, compression), parse_options=options)
    return _keep_utc(table, data, compression, set(types))


def _keep_utc(table: pa.Table, data: bytes, compression: str | None, typed: set[str]) -> pa.Table:
    """pyarrow reads ``"2024-01-01T00:00:00Z"`` (or ``+02:00``) as a UTC instant without a zone: an inferred
    timestamp column whose every text names a zone is made ``timestamp[.., UTC]``, as the text says."""
    inferred = [f.name for f in table.schema if pa.types.is_timestamp(f.type) and f.type.tz is None]
    inferred = [name for name in inferred if name not in typed]
    if not inferred:
        return table
    as_text = pajson.read_json(
        _text_stream(data, compression),
        parse_options=pajson.ParseOptions(
            explicit_schema=pa.schema([(name, pa.string()) for name in inferred]), unexpected_field_behavior="ignore"
        ),
    )
    for name in inferred:
        texts = [text for text in as_text[name].to_pylist() if text is not None]
        if texts and all(_ZONED.search(text) for text in texts):
            index = table.schema.get_field_index(name)
            zoned = pa.timestamp(table.schema.field(index).type.unit, "UTC")
            table = table.set_column(index, pa.field(name, zoned), table.column(index).cast(zoned))
    return table


def read_table(
    uri: str, size: int | None = None, csv: CsvFormat | None = None, data: bytes | None = None
) -> pa.Table:
    """Read one whole data file into an Arrow table (one GET on S3; none when its ``data`` are given); ``csv`` says
    how CSV files are parsed."""
    fmt = detect_format(uri)
    try:
        if fmt.kind == PARQUET:
            in_memory = data is not None or storage.is_s3(uri)
            source = pa.BufferReader(data if data is not None else storage.read_bytes(uri)) if in_memory else uri
            table = pq.ParquetFile(source, memory_map=not in_memory).read()  # read_table: 1 ms more a file
            refuse_duplicate_columns(table.schema, uri)
            return table
        data = data if data is not None else storage.read_bytes(uri)
        if fmt.kind == CSV:
            return _read_csv(uri, data, fmt.compression, csv or CsvFormat())
        return _read_json(uri, data, fmt.compression, (csv or CsvFormat()).column_types)
    except FileNotFoundError:
        raise SnapshotError(f"file listed in the manifest is missing: {uri}") from None
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"cannot read {uri} as a JSON array: {exc}") from None
    except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
        raise SnapshotError(f"cannot read {uri} as {fmt.kind}: {exc}") from None


def dictionary_encoded_columns(metadata: pq.FileMetaData) -> list[str]:
    """The top-level text and binary columns whose column chunks all start with a dictionary page: read as Arrow
    dictionaries (``read_dictionary``), they decode without building a string per row."""
    if not metadata.num_row_groups:
        return []
    first = metadata.row_group(0)
    candidates = {
        i: first.column(i).path_in_schema
        for i in range(first.num_columns)
        if first.column(i).physical_type == "BYTE_ARRAY" and "." not in first.column(i).path_in_schema
    }
    return [
        name
        for i, name in candidates.items()
        if all(metadata.row_group(g).column(i).has_dictionary_page for g in range(metadata.num_row_groups))
    ]


def read_row_groups(parquet: pq.ParquetFile) -> Iterator[pa.Table]:
    """An open Parquet file a row group at a time: memory holds one row group, and a file opened with
    ``pre_buffer=True`` fetches each row group's column chunks in one coalesced read (one ranged GET on S3 instead
    of one per column; on local disk a memory map reads without copying, no pre-buffering needed)."""
    for index in range(parquet.num_row_groups):
        yield parquet.read_row_group(index)


ARROW_BYTES_PER_PARQUET_BYTE = 2.0
"""Arrow bytes per uncompressed Parquet byte (a footer's row group sizes), about: strings take offsets, dictionaries
are decoded."""


def read_parquet_batches(uri: str, size: int | None = None, batch_bytes: int = 8 * 1024**2) -> Iterator[pa.Table]:
    """A Parquet file in tables of about ``batch_bytes`` of Arrow, decoded as they are read (ranged reads on S3;
    plain reads on local disk, whose pages would count in the worker's memory if mapped): a file bigger than
    memory can be read, and so can a row group (some writers make them of a million rows)."""
    try:
        with storage.open_for_streaming(uri, size) as f:
            parquet = pq.ParquetFile(f, pre_buffer=False)  # pre-buffering would fetch every row group at once
            refuse_duplicate_columns(parquet.schema_arrow, uri)
            metadata = parquet.metadata
            bytes_per_row = ARROW_BYTES_PER_PARQUET_BYTE * uncompressed_bytes(metadata) / max(1, metadata.num_rows)
            batch_rows = max(1_024, int(batch_bytes / max(1.0, bytes_per_row)))
            for batch in parquet.iter_batches(batch_size=batch_rows):
                yield pa.Table.from_batches([batch])
    except FileNotFoundError:
        raise SnapshotError(f"file listed in the manifest is missing: {uri}") from None
    except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
        raise SnapshotError(f"cannot read {uri} as {PARQUET}: {exc}") from None


# ---- reading a snapshot file as its source says ------------------------------------------------------------

@dataclass(frozen=True)
class FileToRead:
    """One snapshot file as its manifest row describes it."""

    uri: str
    size: int | None
    expected_records: int | None
    extras: Mapping[str, Any] = field(default_factory=dict)
    """The row's other columns (an export's checksum, batch, ...)."""
    etag: str | None = None

    def check_unchanged(self) -> storage.ObjectInfo:
        """Refuse a file whose size or ETag differs from the manifest's: the snapshot changed during the run.
        Returns what the store says of the file now."""
        try:
            found = storage.head(self.uri)
        except FileNotFoundError:
            raise SnapshotError(f"file listed in the manifest is missing: {self.uri}") from None
        self._refuse_changed(found)
        return found

    def read_unchanged(self) -> bytes:
        """The file's bytes, refused as by :meth:`check_unchanged` when the size or ETag that came with them differ
        from the manifest's: one request on S3 instead of a HEAD and a GET, and the check is of the bytes read."""
        try:
            data, found = storage.read_object(self.uri)
        except FileNotFoundError:
            raise SnapshotError(f"file listed in the manifest is missing: {self.uri}") from None
        self._refuse_changed(found)
        return data

    def _refuse_changed(self, found: storage.ObjectInfo) -> None:
        listed, now = _unquoted(self.etag), _unquoted(found.etag)
        changed = (self.size is not None and found.size != self.size) or (
            listed is not None and now is not None and now != listed
        )
        if changed:
            raise SnapshotError(
                f"{self.uri} changed after the manifest was written (manifest: {self.size} bytes, ETag {self.etag}; "
                f"now: {found.size} bytes, ETag {found.etag}): a snapshot must not change while it is exported — "
                "rebuild the manifest and rerun with --fresh"
            )


def _unquoted(etag: str | None) -> str | None:
    """An ETag without the double quotes S3 (and boto3) put around it."""
    return etag.strip('"') if etag else None


@dataclass(frozen=True)
class ReadResult:
    table: pa.Table
    n_bad_value: int = 0
    """Values that did not parse as their type and became null (``--on-bad-value null``)."""

    @functools.cached_property
    def nbytes(self) -> int:
        """The memory the rows hold: their buffers' size (a read's buffers are its own; ``Table.nbytes``, which
        allows for slices, costs ~30 µs a call: seconds over 50,000 tiny files)."""
        return int(self.table.get_total_buffer_size())

    @property
    def schema(self) -> pa.Schema:
        return self.table.schema

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


SourceReader = Callable[[FileToRead, SnapshotReader, str], ReadResult]
"""How a source reads one of its files: ``(file, the manifest's reader, on_bad_value) -> ReadResult``."""


def read_snapshot_file(
    file: FileToRead,
    reader: SnapshotReader | None,
    on_bad_value: str = "error",
    source_readers: Mapping[str, SourceReader] | None = None,
) -> ReadResult:
    """Read one snapshot file the way its source says (the manifest's ``reader``, one of ``source_readers``), else
    by its name's suffix."""
    if reader is None:
        return ReadResult(read_table(file.uri, file.size))
    known = source_readers or {}
    if reader.format not in known:
        names = ", ".join(sorted(known)) or "none"
        raise SnapshotError(
            f"the snapshot manifest names reader format {reader.format!r}, which is not known (known: {names})"
        )
    return known[reader.format](file, reader, on_bad_value)
