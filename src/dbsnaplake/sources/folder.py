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
import dataclasses
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from dbsnaplake import storage
from dbsnaplake.config.settings import SourceSettings
from dbsnaplake.errors import ConfigError, SnapshotError
from dbsnaplake.frames.readers import (
    CSV,
    PARQUET,
    FileToRead,
    ReadResult,
    count_records,
    csv_format,
    detect_format,
    is_ignorable,
    read_table,
    sniff_delimiter,
    text_head,
)
from dbsnaplake.manifest import Manifest, data_uri_for, files_table, write_manifest
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import CsvOptions, SnapshotDetails, SnapshotReader
from dbsnaplake.sources.base import ManifestUriFor, SourceBuildResult, TableSnapshot
from dbsnaplake.storage import ObjectInfo
from dbsnaplake.storage.parallel import map_io
from dbsnaplake.units import format_size

KIND = "folder"
READER_FORMAT = "files"

@dataclass(frozen=True)
class FolderOptions:
    """How a folder of data files becomes a table."""

    name: str | None = None
    """``database.table`` (or ``table``); default: the folder's parent's name and the folder's name."""
    csv: CsvOptions = field(default_factory=CsvOptions)
    count_text_records: bool = True
    """Read text files to count their records now; ``False`` leaves them unknown for the ETL stage to count."""

    @classmethod
    def of(cls, settings: SourceSettings) -> FolderOptions:
        """A folder source's options from the run's settings (``--table-name``, ``--csv-*``, ...)."""
        csv = CsvOptions(
            delimiter=settings.csv_delimiter,
            header=settings.csv_header,
            column_names=settings.csv_column_names,
            column_types=settings.csv_column_types + settings.column_types,  # the CSV options carry JSON's too
        )
        return cls(name=settings.table_name, csv=csv, count_text_records=settings.count_text_records)


def read_file(file: FileToRead, reader: SnapshotReader, on_bad_value: str) -> ReadResult:
    """The ETL stage's reader for ``{"format": "files", "csv": {...}}``: any data file, CSV with these options."""
    return ReadResult(read_table(file.uri, file.size, csv_format(reader.csv or CsvOptions())))


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
            options = dataclasses.replace(options, header=False)
            names = "the names given" if options.column_names else "columns f0, f1, ..."
            notes.append(
                f"CSV: the first row of {storage.base_name(first)} holds a number or a date, so CSV files are read "
                f"without a header row ({names}); pass --csv-header if that row is one"
            )
    if options.column_types:
        columns = read_table(first, csv_files[0].size, csv_format(options)).column_names
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
    parse_as = csv_format(csv)

    def count(info: ObjectInfo) -> int | None:
        if detect_format(info.uri).kind != PARQUET and not options.count_text_records:
            return None
        return count_records(info.uri, info.size, parse_as)

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
    reader = SnapshotReader(format=READER_FORMAT, csv=csv) if csv != CsvOptions() else None
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
