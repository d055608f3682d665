"""A folder (or S3 prefix) of data files as one table: Parquet, CSV, NDJSON and JSON arrays, plain or
compressed (``.gz``, ``.zst``), mixed formats allowed.

Record counts come from Parquet footers; text files are read to count theirs (or, with
``count_text_records=False``, their counts are left unknown and the ETL stage counts them as it reads them).
CSV files are parsed as :class:`CsvOptions` say; what is not said is inferred: the delimiter per file from its
first line, the header row per file (the first file decides: a header unless that row holds a number or a date;
a later file whose first row holds one is read without, with the first file's column names), the types by pyarrow.
A 0-byte text file is 0 rows. ``key=value`` folders below the source (``region=eu/``, as Spark writes) become
columns, as DuckDB's ``hive_partitioning`` reads them (``--no-hive-partitioning`` turns that off). Options that differ from what a plain manifest reads go into the manifest's ``reader``
(``{"format": "files", "csv": {...}}``), so the ETL workers read the files the same way.
"""

from __future__ import annotations

import csv as pycsv
import dataclasses
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from dbsnaplake import storage
from dbsnaplake.config.settings import SourceSettings
from dbsnaplake.errors import ConfigError, SnapshotError
from dbsnaplake.frames.partitioning import parse_partition_path
from dbsnaplake.frames.readers import (
    CSV,
    PARQUET,
    CsvFormat,
    FileToRead,
    ReadResult,
    csv_format,
    detect_format,
    is_ignorable,
    read_parquet_footer,
    read_table,
    sniff_delimiter,
    text_head,
)
from dbsnaplake.frames.schema import encode_schema
from dbsnaplake.manifest import Manifest, data_uri_for, files_table, footer_columns, write_manifest
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import CsvOptions, SnapshotDetails, SnapshotReader
from dbsnaplake.sources.base import ManifestUriFor, SourceBuildResult, TableSnapshot
from dbsnaplake.storage import ObjectInfo
from dbsnaplake.storage.parallel import map_io
from dbsnaplake.units import format_size

KIND = "folder"
READER_FORMAT = "files"

@dataclass(frozen=True)
class FileCount:
    """What building the manifest learnt of one file: its records (``None``: a text file not counted) and, of a
    Parquet file, what its footer says (the encoded Arrow schema, the uncompressed bytes)."""

    n_record: int | None
    parquet_schema: str | None = None
    uncompressed_size: int | None = None


@dataclass(frozen=True)
class FolderOptions:
    """How a folder of data files becomes a table."""

    name: str | None = None
    """``database.table`` (or ``table``); default: the folder's parent's name and the folder's name."""
    csv: CsvOptions = field(default_factory=CsvOptions)
    count_text_records: bool = True
    """Read text files to count their records now; ``False`` leaves them unknown for the ETL stage to count."""
    hive_partitioning: bool = True
    """``key=value`` folders below the source become columns (see :func:`hive_partitions`)."""

    @classmethod
    def of(cls, settings: SourceSettings) -> FolderOptions:
        """A folder source's options from the run's settings (``--table-name``, ``--csv-*``, ...)."""
        csv = CsvOptions(
            delimiter=settings.csv_delimiter,
            header=settings.csv_header,
            column_names=settings.csv_column_names,
            column_types=settings.csv_column_types + settings.column_types,  # the CSV options carry JSON's too
        )
        return cls(
            name=settings.table_name,
            csv=csv,
            count_text_records=settings.count_text_records,
            hive_partitioning=settings.hive_partitioning,
        )

    def check(self) -> None:
        """Refuse what the options say wrongly (an unknown CSV column type) before anything is read or written."""
        csv_format(self.csv)


HIVE_PREFIX = "hive_partition:"
"""The manifest column of a Hive partition column's values: ``hive_partition:region``."""
CSV_HEADER = "csv_header"
"""The manifest column saying whether each CSV file starts with a header row (null: the folder's rule)."""
_INTEGER = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")  # canonical, and within int64: "01" stays a string


def file_csv_format(options: CsvOptions, header: bool | None) -> CsvFormat:
    """How one CSV file is parsed: the folder's options, with the file's own header decision; a file without a
    header in a folder whose first file has one is read with that file's column names."""
    if header is None or header == options.header:
        return csv_format(options)
    names = options.column_names or (() if header else options.header_names)
    return csv_format(dataclasses.replace(options, header=header, column_names=names))


def with_partition_columns(table: pa.Table, file: FileToRead, reader: SnapshotReader) -> pa.Table:
    """Add the file's Hive partition values (from its folders, kept in the manifest) as columns."""
    for name, type_name in reader.partition_columns:
        if name in table.column_names:
            raise SnapshotError(
                f"{file.uri} has a column {name!r} and lies in a {name}=... folder: pass --no-hive-partitioning to "
                "keep the file's own column, or rename one of them"
            )
        value = file.extras.get(HIVE_PREFIX + name)
        table = table.append_column(name, pa.repeat(pa.scalar(value, pa.type_for_alias(type_name)), table.num_rows))
    return table


def read_file(file: FileToRead, reader: SnapshotReader, on_bad_value: str) -> ReadResult:
    """The ETL stage's reader for ``{"format": "files", ...}``: any data file, CSV with the folder's options and the
    file's header decision, plus the Hive partition columns of its folders."""
    parse_as = file_csv_format(reader.csv or CsvOptions(), file.extras.get(CSV_HEADER))
    return ReadResult(with_partition_columns(read_table(file.uri, file.size, parse_as), file, reader))


def hive_partitions(source: str, uris: Sequence[str]) -> dict[str, pa.Array]:
    """The ``key=value`` folders between ``source`` and each file, as DuckDB's ``hive_partitioning`` reads them:
    one column per key, int64 when every value is an integer (without leading zeros), else string; the default
    partition (``__HIVE_DEFAULT_PARTITION__``) is null. Every file must lie in folders of the same keys."""
    rows: list[dict[str, str | None]] = []
    for uri in uris:
        folders = uri[len(source) :].split("/")[:-1]
        segments = [f for f in folders if "=" in f and not f.startswith("=")]
        rows.append(parse_partition_path("/".join(segments)) if segments else {})
    keys = list(rows[0]) if rows else []
    for uri, row in zip(uris, rows, strict=True):
        if list(row) != keys:
            raise SnapshotError(
                f"{uri} lies in folders of partition columns {list(row) or 'none'}, but {uris[0]} in "
                f"{keys or 'none'}: every file must have the same key=value folders — or pass --no-hive-partitioning"
            )
    columns = {}
    for key in keys:
        values = [row[key] for row in rows]
        integers = all(v is None or _INTEGER.match(v) for v in values)
        typed = [None if v is None else int(v) for v in values] if integers else values
        columns[HIVE_PREFIX + key] = pa.array(typed, pa.int64() if integers else pa.string())
    return columns


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


def _first_row(head: bytes, uri: str, options: CsvOptions) -> tuple[list[str], str]:
    """The first row's fields of a CSV file's head, and the file's delimiter."""
    default = "\t" if ".tsv" in storage.base_name(uri).lower() else ","
    delimiter = options.delimiter or sniff_delimiter(head, default)
    line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    return next(pycsv.reader(io.StringIO(line), delimiter=delimiter), []), delimiter


def _file_headers(
    csv_files: list[ObjectInfo], options: CsvOptions, heads: list[bytes]
) -> tuple[CsvOptions, list[bool | None], list[str]]:
    """Decide, when not given, which CSV files start with a header row: the first (non-empty) file decides the
    folder's rule; a later file whose first row matches that header is read with it, one whose first row holds a
    number or a date is read without one (with the first file's column names), never silently mixed."""
    non_empty = [i for i, head in enumerate(heads) if head.strip()]
    if options.header is not None or not non_empty:
        return options, [None] * len(csv_files), []
    first = csv_files[non_empty[0]].uri
    header, delimiter = _first_row(heads[non_empty[0]], first, options)
    if not first_row_is_header(heads[non_empty[0]], delimiter):
        names = "the names given" if options.column_names else "columns f0, f1, ..."
        note = (
            f"CSV: the first row of {storage.base_name(first)} holds a number or a date, so CSV files are read "
            f"without a header row ({names}); pass --csv-header if that row is one"
        )
        return dataclasses.replace(options, header=False), [None] * len(csv_files), [note]
    decided: list[bool | None] = [None] * len(csv_files)
    without: list[str] = []
    for i in non_empty[1:]:
        row, file_delimiter = _first_row(heads[i], csv_files[i].uri, options)
        if row != header and not first_row_is_header(heads[i], file_delimiter):
            if len(row) != len(header) and not options.column_names:
                raise SnapshotError(
                    f"{csv_files[i].uri} has no header row and {len(row)} columns, but {first} has the header "
                    f"{', '.join(header)}: pass --csv-column-names (and --csv-header or --csv-no-header)"
                )
            decided[i] = False
            without.append(storage.base_name(csv_files[i].uri))
    if not without:
        return options, decided, []  # every file has a header row: the plain rule says so
    options = dataclasses.replace(options, header=True, header_names=tuple(header))
    shown = ", ".join(without[:3]) + (" ..." if len(without) > 3 else "")
    note = (
        f"CSV: {len(without)} file(s) start with data, not a header row ({shown}): read with the columns of "
        f"{storage.base_name(first)}'s header"
    )
    return options, decided, [note]


def _resolve_csv(csv_files: list[ObjectInfo], options: CsvOptions) -> tuple[CsvOptions, list[bool | None], list[str]]:
    """Decide the header rows when not given (per file, see :func:`_file_headers`), and check named columns exist."""
    if not csv_files:
        return options, [], []
    heads = map_io(lambda info: text_head(info.uri), csv_files) if options.header is None else []
    options, headers, notes = _file_headers(csv_files, options, heads)
    first = csv_files[0].uri
    if options.column_types:
        columns = read_table(first, csv_files[0].size, csv_format(options)).column_names
        missing = [c for c, _ in options.column_types if c not in columns]
        if missing:
            raise ConfigError(
                f"CSV column types name {', '.join(map(repr, missing))}, which {first} does not have "
                f"(its columns: {', '.join(columns)})"
            )
    return options, headers, notes


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
    csv_indices = [i for i, k in enumerate(kinds) if k == CSV]
    csv, csv_headers, notes = _resolve_csv([infos[i] for i in csv_indices], options.csv)
    headers: list[bool | None] = [None] * len(infos)
    for index, header in zip(csv_indices, csv_headers, strict=True):
        headers[index] = header

    def count(numbered: tuple[int, ObjectInfo]) -> FileCount:
        index, info = numbered
        if kinds[index] == PARQUET:
            footer = read_parquet_footer(info.uri, info.size)
            return FileCount(footer.n_record, encode_schema(footer.schema), footer.uncompressed_size)
        if not options.count_text_records:
            return FileCount(None)
        return FileCount(read_table(info.uri, info.size, file_csv_format(csv, headers[index])).num_rows)

    progress.start("count records", len(infos))
    found = map_io(count, list(enumerate(infos)), progress)
    n_text = sum(1 for k in kinds if k != PARQUET)
    empty = {i for i, f in enumerate(found) if f.n_record == 0 and kinds[i] != PARQUET}
    if empty:  # an empty JSON file has no columns either: leave it out rather than make the ETL stage guess
        notes.append(f"{len(empty)} text file(s) without records left out, e.g. {infos[min(empty)].uri}")
        infos = [info for i, info in enumerate(infos) if i not in empty]
        found = [f for i, f in enumerate(found) if i not in empty]
        headers = [h for i, h in enumerate(headers) if i not in empty]
    if n_text and options.count_text_records:
        notes.append(f"record counts: Parquet from footers; {n_text:,} text files were read to count theirs")
    elif n_text:
        notes.append(
            f"record counts: Parquet from footers; {n_text:,} text files left unknown (the ETL stage counts them "
            "as it reads them)"
        )
    uris = [i.uri for i in infos]
    extra: dict[str, pa.Array] = hive_partitions(source, uris) if options.hive_partitioning else {}
    partition_columns = tuple((name[len(HIVE_PREFIX) :], str(values.type)) for name, values in extra.items())
    if partition_columns:
        notes.append(f"hive partitioning: the folders give column(s) {', '.join(n for n, _ in partition_columns)}")
    if any(h is not None for h in headers):
        extra[CSV_HEADER] = pa.array(headers, pa.bool_())
    extra.update(footer_columns([f.parquet_schema for f in found], [f.uncompressed_size for f in found]))
    counts = [f.n_record for f in found]
    files = files_table(uris, [i.size for i in infos], counts, [i.etag for i in infos], **extra)
    own_reader = csv != CsvOptions() or partition_columns
    reader = SnapshotReader(format=READER_FORMAT, csv=csv, partition_columns=partition_columns) if own_reader else None
    database, table = table_name(source, options.name)
    manifest = write_manifest(out, files, SnapshotDetails(reader=reader, source=source))
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


@dataclass(frozen=True)
class ManifestBuildResult:
    manifest: Manifest
    n_read_for_counts: int
    """Text files whose records were counted by reading them (Parquet counts come from footers)."""

    def __str__(self) -> str:
        m = self.manifest
        records = f"{m.n_record:,}" if m.n_record is not None else "unknown"
        how = f"; {self.n_read_for_counts} text files were read to count records" if self.n_read_for_counts else ""
        return (
            f"manifest {m.summary_uri}: {m.n_file:,} files, {format_size(m.size)}, {records} records "
            f"(Parquet counts from footers{how})"
        )


def build_manifest(
    source: str, out: str, progress: Progress | None = None, options: FolderOptions | None = None
) -> ManifestBuildResult:
    """List every data file below ``source``, count its records and write the manifest at ``out``."""
    listing = storage.list_files(storage.as_dir(source))
    built = build_folder_manifest(source, listing, out, options, progress)
    return ManifestBuildResult(built.manifest, built.n_read_for_counts)
