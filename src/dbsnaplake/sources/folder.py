"""A folder (or S3 prefix) of data files as one table: Parquet, CSV, NDJSON and JSON arrays, plain or
compressed (``.gz``, ``.zst``), mixed formats allowed.

Record counts come from Parquet footers; text files are read to count theirs (or, with
``count_text_records=False``, their counts are left unknown and the ETL stage counts them as it reads them).
CSV files are parsed as :class:`CsvOptions` say; what is not said is inferred: the delimiter per file from its
first line, the header row once from the first CSV file (a header unless that row holds a number or a date),
the types by pyarrow. Options that differ from what a plain manifest reads go into the manifest's ``reader``
(``{"format": "files", "csv": {...}}``), so the ETL workers read the files the same way.
"""

from __future__ import annotations

import csv as pycsv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .. import storage
from ..concurrency import map_io
from ..errors import ConfigError, SnapshotError
from ..manifest import READER, Manifest, data_uri_for, files_table, write_manifest
from ..progress import NoProgress, Progress
from ..readers import (
    CSV,
    PARQUET,
    CsvFormat,
    FileToRead,
    ReadResult,
    count_records,
    detect_format,
    is_ignorable,
    read_table,
    sniff_delimiter,
    text_head,
)
from ..storage import ObjectInfo
from .base import ManifestUriFor, SourceBuildResult, TableSnapshot

KIND = "folder"
READER_FORMAT = "files"

# ---- CSV options: what a user may say about CSV files ---------------------------------------------------------

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


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets: ``id=int64,price=decimal(12,2)`` → two items."""
    items, depth, current = [], 0, ""
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]


def parse_column_types(text: str) -> tuple[tuple[str, str], ...]:
    """``"id=int64,price=decimal(12,2)"`` → ``(("id", "int64"), ("price", "decimal(12,2)"))``, each type checked."""
    pairs = []
    for item in _split_top_level(text):
        column, sep, spelled = item.partition("=")
        if not sep or not column.strip() or not spelled.strip():
            raise ConfigError(f"CSV column types: {item!r} is not column=type (example: id=int64,price=decimal(12,2))")
        parse_type(spelled)
        pairs.append((column.strip(), spelled.strip()))
    return tuple(pairs)


def parse_delimiter(text: str) -> str:
    """A one-character delimiter; ``\\t`` and ``tab`` mean TAB."""
    delimiter = "\t" if text in ("\\t", "tab", "TAB") else text
    if len(delimiter) != 1:
        raise ConfigError(f"CSV delimiter must be one character (or \\t for TAB), got {text!r}")
    return delimiter


@dataclass(frozen=True)
class CsvOptions:
    """What the user says about the folder's CSV files; ``None`` and empty fields are inferred."""

    delimiter: str | None = None
    header: bool | None = None
    """``None``: a header unless the first CSV file's first row holds a number or a date."""
    column_names: tuple[str, ...] = ()
    column_types: tuple[tuple[str, str], ...] = ()
    """``(column, type spelling)`` pairs, e.g. ``("price", "decimal(12,2)")`` (see :func:`parse_type`)."""

    def to_format(self) -> CsvFormat:
        types = {column: parse_type(spelled) for column, spelled in self.column_types}
        return CsvFormat(self.delimiter, self.header, self.column_names, types)

    def to_json(self) -> dict[str, Any]:
        return {
            "delimiter": self.delimiter,
            "header": self.header,
            "column_names": list(self.column_names),
            "column_types": dict(self.column_types),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> CsvOptions:
        data = data or {}
        return cls(
            delimiter=data.get("delimiter"),
            header=data.get("header"),
            column_names=tuple(data.get("column_names") or ()),
            column_types=tuple((data.get("column_types") or {}).items()),
        )


@dataclass(frozen=True)
class FolderOptions:
    """How a folder of data files becomes a table."""

    name: str | None = None
    """``database.table`` (or ``table``); default: the folder's parent's name and the folder's name."""
    csv: CsvOptions = field(default_factory=CsvOptions)
    count_text_records: bool = True
    """Read text files to count their records now; ``False`` leaves them unknown for the ETL stage to count."""


def read_file(file: FileToRead, reader: Mapping[str, Any], on_bad_value: str) -> ReadResult:
    """The ETL stage's reader for ``{"format": "files", "csv": {...}}``: any data file, CSV with these options."""
    return ReadResult(read_table(file.uri, file.size, CsvOptions.from_json(reader.get("csv")).to_format()))


# ---- the source: looks_like and build ----------------------------------------------------------------------


def data_files(listing: Sequence[ObjectInfo]) -> tuple[list[ObjectInfo], list[ObjectInfo]]:
    """``(data files, files of unknown format)``, markers (``_SUCCESS``) and hidden files left out."""
    known, unknown = [], []
    for info in listing:
        if is_ignorable(info.uri):
            continue
        try:
            detect_format(info.uri)
            known.append(info)
        except SnapshotError:
            unknown.append(info)
    return known, unknown


def looks_like(source: str, listing: list[ObjectInfo]) -> bool:
    """A folder source holds at least one data file of a known format."""
    return bool(data_files(listing)[0])


_NUMBER_OR_DATE = re.compile(r"^\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|\d{4}-\d{2}-\d{2}.*)\s*$")


def first_row_is_header(head: bytes, delimiter: str) -> bool:
    """Column names are not numbers or dates: a first row holding one is data."""
    line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    fields = next(pycsv.reader(io.StringIO(line), delimiter=delimiter), [])
    return not any(_NUMBER_OR_DATE.match(value) for value in fields if value)


def table_name(source: str, name: str | None) -> tuple[str, str]:
    """``(database, table)``: from ``name``, else the folder's parent and the folder (``key=value`` folders skipped)."""
    parts = [p for p in source.rstrip("/").split("/") if p and p != "s3:" and "=" not in p]
    folder_table = parts[-1] if parts else "snapshot"
    folder_database = parts[-2] if len(parts) >= 2 else "default"
    if not name:
        return folder_database, folder_table
    database, dot, table = name.partition(".")
    return (database, table) if dot and database and table else (folder_database, name)


@dataclass(frozen=True)
class FolderManifest:
    manifest: Manifest
    database: str
    table: str
    n_read_for_counts: int
    """Text files whose records were counted by reading them (Parquet counts come from footers)."""
    notes: tuple[str, ...] = ()


def _resolve_csv(csv_files: list[ObjectInfo], options: CsvOptions) -> tuple[CsvOptions, list[str]]:
    """Decide the header row from the first CSV file when not given, and check named columns exist."""
    if not csv_files:
        return options, []
    notes: list[str] = []
    first = csv_files[0].uri
    if options.header is None:
        head = text_head(first)
        default = "\t" if ".tsv" in storage.base_name(first).lower() else ","
        if not first_row_is_header(head, options.delimiter or sniff_delimiter(head, default)):
            options = CsvOptions(options.delimiter, False, options.column_names, options.column_types)
            names = "the names given" if options.column_names else "columns f0, f1, ..."
            notes.append(
                f"CSV: the first row of {storage.base_name(first)} holds a number or a date, so CSV files are read "
                f"without a header row ({names}); pass --csv-header if that row is one"
            )
    if options.column_types:
        columns = read_table(first, csv_files[0].size, options.to_format()).column_names
        missing = [c for c, _ in options.column_types if c not in columns]
        if missing:
            raise ConfigError(
                f"CSV column types name {', '.join(map(repr, missing))}, which {first} does not have "
                f"(its columns: {', '.join(columns)})"
            )
    return options, notes


def build_folder_manifest(
    source: str,
    listing: Sequence[ObjectInfo],
    out: str,
    options: FolderOptions | None = None,
    progress: Progress | None = None,
) -> FolderManifest:
    """Write the manifest of every data file in ``listing`` (the files below ``source``) at ``out``."""
    options, progress = options or FolderOptions(), progress or NoProgress()
    source, out = storage.as_dir(source), storage.normalize_uri(out)
    own = {out, data_uri_for(out)}
    infos, unknown = data_files([i for i in listing if i.uri not in own])
    if unknown:
        names = ", ".join(i.uri[len(source) :] for i in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise SnapshotError(
            f"{len(unknown)} file(s) under {source} are of no known data format: {names} — move them out of the "
            f"snapshot folder (supported: .parquet, .csv, .tsv, .ndjson, .jsonl, .json, text ones optionally .gz/.zst)"
        )
    if not infos:
        raise SnapshotError(f"no data files under {source}: check the path (supported: Parquet, CSV, NDJSON, JSON)")
    kinds = [detect_format(i.uri).kind for i in infos]
    csv, notes = _resolve_csv([i for i, k in zip(infos, kinds, strict=True) if k == CSV], options.csv)
    csv_format = csv.to_format()

    def count(info: ObjectInfo) -> int | None:
        if detect_format(info.uri).kind != PARQUET and not options.count_text_records:
            return None
        return count_records(info.uri, info.size, csv_format)

    progress.start("count records", len(infos))
    counts = map_io(count, infos, progress)
    n_text = sum(1 for k in kinds if k != PARQUET)
    empty = {i for i, n in enumerate(counts) if n == 0 and kinds[i] != PARQUET}
    if empty:  # an empty JSON file has no columns either: leave it out rather than make the ETL stage guess
        notes.append(f"{len(empty)} text file(s) without records left out, e.g. {infos[min(empty)].uri}")
        infos = [info for i, info in enumerate(infos) if i not in empty]
        counts = [n for i, n in enumerate(counts) if i not in empty]
    if n_text and options.count_text_records:
        notes.append(f"record counts: Parquet from footers; {n_text:,} text files were read to count theirs")
    elif n_text:
        notes.append(
            f"record counts: Parquet from footers; {n_text:,} text files left unknown (the ETL stage counts them "
            "as it reads them)"
        )
    files = files_table([i.uri for i in infos], [i.size for i in infos], counts, [i.etag for i in infos])
    extra: dict[str, Any] = {"source": source}
    if csv != CsvOptions():
        extra[READER] = {"format": READER_FORMAT, "csv": csv.to_json()}
    database, table = table_name(source, options.name)
    manifest = write_manifest(out, files, extra=extra)
    return FolderManifest(manifest, database, table, n_text if options.count_text_records else 0, tuple(notes))


def build(
    source: str,
    listing: list[ObjectInfo],
    manifest_uri_for: ManifestUriFor,
    progress: Progress | None = None,
    options: FolderOptions | None = None,
) -> SourceBuildResult:
    """One table: every data file below ``source``."""
    database, table = table_name(storage.as_dir(source), (options or FolderOptions()).name)
    built = build_folder_manifest(source, listing, manifest_uri_for(database, table, None), options, progress)
    m = built.manifest
    snapshot = TableSnapshot.of(m, f"{database}.{table}", database, table, snapshot_time=None)
    return SourceBuildResult(KIND, storage.as_dir(source), (snapshot,), notes=built.notes)
