"""DynamoDB exports to S3 (``ExportTableToPointInTime``): find them, write one snapshot manifest per export, and
read their data files in the ETL stage.

An export is a folder ``<prefix>/AWSDynamoDB/<export-id>/`` holding ``manifest-summary.json``,
``manifest-files.json`` (one line per data file: ``dataFileS3Key``, ``itemCount``, ``md5Checksum``), ``_started``
and ``*.checksum`` files; a full export's data files are in its ``data/`` folder, an incremental export's in the
``AWSDynamoDB/data/`` folder that incremental exports share. Data files are found through
``manifest-files.json`` only, never by listing a ``data/`` folder. A data key is placed by its part after
``AWSDynamoDB/``, relative to the ``AWSDynamoDB/`` folder the export was found in: the export reads the same in
its bucket, in another bucket or prefix, and on local disk, as long as the ``AWSDynamoDB/`` layout is kept.

The source may be the folder holding ``AWSDynamoDB/``, ``AWSDynamoDB/`` itself, or one export folder. Each
finished export found is one snapshot: ``dynamodb.<table>`` for a full export, ``dynamodb.<table>.changes``
for an incremental one (the table name from ``tableArn``; the database is always ``dynamodb``, the account and
region stay in the manifest), at ``exportTime`` (an incremental export: ``exportToTime``).

Items have no schema, so :func:`build` reads every item once to decide each attribute's Arrow type (see
:mod:`.dynamodb_json`); the types go into the manifest's ``reader``, so every ETL worker reads with the same
schema. An incremental export becomes a change table: ``_op`` (``insert``, ``update``, ``delete``; ``upsert``
when the export has new images only), ``_write_time`` (``Metadata.WriteTimestampMicros``, UTC), the key
attributes, the new image's attributes, and ``_old_image`` (a struct) when the export has old images.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import io
import json
import re
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from dbsnaplake import storage
from dbsnaplake.config.settings import ON_BAD_VALUE
from dbsnaplake.errors import ConfigError, SnapshotError
from dbsnaplake.frames.readers import FileToRead, ReadResult
from dbsnaplake.frames.schema import decode_schema, encode_schema
from dbsnaplake.manifest import files_table, write_manifest
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import SnapshotDetails, SnapshotReader
from dbsnaplake.sources.base import ManifestUriFor, SourceBuildResult, TableSnapshot
from dbsnaplake.sources.dynamodb import ion as dynamodb_ion
from dbsnaplake.sources.dynamodb.typed_json import MAPS, BadValue, Convert, Survey, converter
from dbsnaplake.storage import ObjectInfo
from dbsnaplake.storage.parallel import map_io
from dbsnaplake.units import format_size

KIND = "dynamodb-export"
DATABASE = "dynamodb"
CHANGES_SUFFIX = ".changes"
EXPORTS_FOLDER = "AWSDynamoDB"
SUMMARY, FILES, STARTED = "manifest-summary.json", "manifest-files.json", "_started"
ITEMS_JSON, ITEMS_ION, CHANGES = "dynamodb-json", "dynamodb-ion", "dynamodb-incremental"
"""The manifest's ``reader.format``: a full export in DynamoDB JSON, in Ion, an incremental export (either)."""
MD5 = "md5"
"""The manifest column with each data file's ``md5Checksum`` (base64 MD5 of the file as stored, gzip bytes)."""
OP, WRITE_TIME, OLD_IMAGE = "_op", "_write_time", "_old_image"
CHANGE_COLUMNS = frozenset((OP, WRITE_TIME, OLD_IMAGE))
WRITE_TIME_TYPE = pa.timestamp("us", tz="UTC")
GZIP_MAGIC = b"\x1f\x8b"
BATCH_ROWS = 8_192
"""Decoded values become Arrow arrays every this many items, so few Python objects stay alive: the garbage
collector's passes over a whole file's worth of them cost more than decoding it (measured: 3x)."""
_TABLE_ARN = re.compile(r"^arn:aws[\w-]*:dynamodb:(?P<region>[^:]*):(?P<account>[^:]*):table/(?P<table>[^/]+)$")
_ENCODINGS = {"DYNAMODB_JSON": "json", "ION": "ion"}


@dataclass(frozen=True)
class DynamoDBOptions:
    """How items become a table."""

    maps: str = "struct"
    """``struct``: a map attribute (M) becomes a struct of its keys; ``json``: JSON text."""

    def __post_init__(self) -> None:
        if self.maps not in MAPS:
            raise ConfigError(f"DynamoDB maps option {self.maps!r} is not one of: {', '.join(MAPS)}")


class BadRecord(ValueError):
    """A data file line that is not an item (or change record) of a DynamoDB export."""


# ---- the export's own manifests, mapped once -------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSummary:
    """What this module uses of ``manifest-summary.json``; ``fields`` keeps all of it as AWS wrote it."""

    folder: str
    table_arn: str
    source_table: str
    snapshot_time: str | None
    encoding: str
    """``json`` or ``ion``."""
    incremental: bool
    new_and_old_images: bool
    item_count: int | None
    files_uri: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return self.source_table + (CHANGES_SUFFIX if self.incremental else "")

    @property
    def name(self) -> str:
        return f"{DATABASE}.{self.table}"

    @property
    def reader_format(self) -> str:
        return CHANGES if self.incremental else ITEMS_ION if self.encoding == "ion" else ITEMS_JSON


@dataclass(frozen=True)
class DataFile:
    """One line of ``manifest-files.json``, its key placed relative to where the export was found."""

    uri: str
    n_item: int
    md5: str | None


def read_summary(folder: str) -> ExportSummary:
    uri = storage.join(folder, SUMMARY)
    try:
        data = json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        raise SnapshotError(f"{uri} is missing: is the export finished?") from None
    except ValueError as exc:
        raise SnapshotError(f"{uri} is not JSON ({exc}): copy it again from the export") from None
    if not isinstance(data, dict):
        raise SnapshotError(f"{uri} is not a JSON object: is it a DynamoDB export's {SUMMARY}?")
    arn = _TABLE_ARN.match(str(data.get("tableArn") or ""))
    if arn is None:
        raise SnapshotError(
            f"{uri}: tableArn {data.get('tableArn')!r} is not a DynamoDB table ARN "
            "(arn:aws:dynamodb:<region>:<account>:table/<name>)"
        )
    output_format = str(data.get("outputFormat") or "DYNAMODB_JSON").upper()
    if output_format not in _ENCODINGS:
        raise SnapshotError(f"{uri}: outputFormat {output_format!r} is not one of {', '.join(_ENCODINGS)}")
    export_type = str(data.get("exportType") or "FULL_EXPORT").upper()
    if export_type not in ("FULL_EXPORT", "INCREMENTAL_EXPORT"):
        raise SnapshotError(f"{uri}: exportType {export_type!r} is not FULL_EXPORT or INCREMENTAL_EXPORT")
    incremental = export_type == "INCREMENTAL_EXPORT"
    moment = (data.get("exportToTime") if incremental else None) or data.get("exportTime")
    item_count = data.get("itemCount")
    return ExportSummary(
        folder=storage.as_dir(folder),
        table_arn=arn.group(0),
        source_table=arn["table"],
        snapshot_time=iso_utc(moment, uri),
        encoding=_ENCODINGS[output_format],
        incremental=incremental,
        new_and_old_images=str(data.get("outputView") or "NEW_AND_OLD_IMAGES").upper() == "NEW_AND_OLD_IMAGES",
        item_count=int(item_count) if isinstance(item_count, (int, float, str)) and str(item_count).isdigit() else None,
        files_uri=storage.join(folder, storage.base_name(str(data.get("manifestFilesS3Key") or FILES))),
        fields=data,
    )


def iso_utc(value: Any, where: str) -> str | None:
    """``2020-11-04T07:28:34.028Z`` (or epoch seconds) → ``2020-11-04T07:28:34.028Z``; whole seconds lose ``.000``."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (int, float)):
            moment = datetime.fromtimestamp(value, timezone.utc)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise SnapshotError(f"{where}: export time {value!r} is not an ISO 8601 time") from None
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    millis = f".{moment.microsecond // 1000:03d}" if moment.microsecond else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + millis + "Z"


def data_file_uri(summary: ExportSummary, key: str) -> str:
    """``prefix/AWSDynamoDB/<id>/data/x.json.gz`` → ``<the AWSDynamoDB folder found>/<id>/data/x.json.gz``."""
    marker = EXPORTS_FOLDER + "/"
    at = key.rfind(marker)
    if at < 0:
        raise SnapshotError(
            f"{summary.files_uri}: dataFileS3Key {key!r} has no '{marker}' part, so it cannot be placed relative "
            "to the export"
        )
    return storage.join(storage.parent(summary.folder), key[at + len(marker) :])


def read_data_files(summary: ExportSummary) -> list[DataFile]:
    """The lines of ``manifest-files.json``."""
    try:
        raw = storage.read_bytes(summary.files_uri)
    except FileNotFoundError:
        raise SnapshotError(f"{summary.files_uri} is missing: is the export finished?") from None
    files = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            key, n_item, md5 = str(entry["dataFileS3Key"]), int(entry["itemCount"]), entry.get("md5Checksum")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise SnapshotError(
                f"{summary.files_uri} line {number} is not a data file entry "
                '({"itemCount": ..., "md5Checksum": ..., "dataFileS3Key": ...})'
            ) from None
        files.append(DataFile(data_file_uri(summary, key), n_item, str(md5) if md5 else None))
    return files


# ---- data files: bytes, checked → lines → records → items ------------------------------------------------------


def fetch(uri: str, md5: str | None) -> bytes:
    """A data file's bytes, checked against its ``md5Checksum`` when the manifest has one."""
    try:
        raw = storage.read_bytes(uri)
    except FileNotFoundError:
        raise SnapshotError(f"data file listed in the export's {FILES} is missing: {uri}") from None
    if md5:
        digest = hashlib.md5(raw, usedforsecurity=False).digest()
        found = base64.b64encode(digest).decode("ascii")
        if md5 not in (found, digest.hex()):
            raise SnapshotError(
                f"{uri} does not match its MD5 checksum in the export's {FILES} (expected {md5}, the file has "
                f"{found}): the file is damaged or incomplete — copy it again from the export"
            )
    return raw


def records(uri: str, raw: bytes, encoding: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for every line of a data file (gzip or plain); a line that is not a JSON (or Ion)
    object raises a :class:`SnapshotError` naming the file and the line."""
    parse: Callable[[bytes], Any] = json.loads if encoding == "json" else dynamodb_ion.parse_record
    what = "DynamoDB JSON" if encoding == "json" else "DynamoDB Ion"
    stream = gzip.GzipFile(fileobj=io.BytesIO(raw)) if raw[:2] == GZIP_MAGIC else io.BytesIO(raw)
    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = parse(line)
            except ValueError as exc:
                raise SnapshotError(f"{uri} line {number} is not {what}: {exc}") from None
            if type(record) is not dict:
                raise SnapshotError(f"{uri} line {number} is not {what}: expected an object, got {line[:60]!r}")
            yield number, record
    except (OSError, EOFError, zlib.error) as exc:
        raise SnapshotError(f"{uri} is not a readable gzip file (damaged or incomplete?): {exc}") from None


def full_item(record: dict[str, Any]) -> dict[str, Any]:
    item = record.get("Item")
    if type(item) is not dict:
        raise BadRecord('it has no "Item" object: is this a data file of a full DynamoDB export?')
    return item


def change_item(record: dict[str, Any], new_and_old_images: bool = True) -> dict[str, Any]:
    """A change record as one row: ``_op``, ``_write_time``, the keys, the new image, ``_old_image``."""
    keys, new, old = record.get("Keys"), record.get("NewImage"), record.get("OldImage")
    if type(keys) is not dict:
        raise BadRecord('it has no "Keys" object: is this a data file of an incremental DynamoDB export?')
    for name, image in (("Keys", keys), ("NewImage", new), ("OldImage", old)):
        if image is not None and type(image) is not dict:
            raise BadRecord(f"{name} is not an object")
        clash = [c for c in (OP, WRITE_TIME, OLD_IMAGE) if name != "OldImage" and image and c in image]
        if clash:
            raise BadRecord(
                f"attribute {clash[0]!r} has the name of a column the change table adds ({OP}, {WRITE_TIME}, "
                f"{OLD_IMAGE}): rename the attribute in the table to read its incremental exports"
            )
    if new is None:
        op = "delete"
    elif not new_and_old_images:
        op = "upsert"
    else:
        op = "update" if old is not None else "insert"
    item: dict[str, Any] = {OP: {"S": op}, WRITE_TIME: {"N": _write_micros(record)}}
    item.update(new or {})
    item.update(keys)
    if old is not None:
        item[OLD_IMAGE] = {"M": old}
    return item


def _write_micros(record: dict[str, Any]) -> str:
    metadata = record.get("Metadata")
    value = metadata.get("WriteTimestampMicros") if type(metadata) is dict else None
    if type(value) is dict:
        value = value.get("N")
    text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise BadRecord(f"Metadata.WriteTimestampMicros is {value!r}, not a number of microseconds")
    return text


def item_function(reader_format: str, new_and_old_images: bool = True) -> Callable[[dict[str, Any]], dict[str, Any]]:
    if reader_format == CHANGES:
        return functools.partial(change_item, new_and_old_images=new_and_old_images)
    if reader_format in (ITEMS_JSON, ITEMS_ION):
        return full_item
    raise SnapshotError(
        f"reader format {reader_format!r} is not a DynamoDB export's ({ITEMS_JSON}, {ITEMS_ION}, {CHANGES})"
    )


def items(
    uri: str, raw: bytes, encoding: str, to_item: Callable[[dict[str, Any]], dict[str, Any]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, item)`` of a data file; a line that is no item raises, naming the file and the line."""
    for number, record in records(uri, raw, encoding):
        try:
            item = to_item(record)
        except BadRecord as exc:
            raise SnapshotError(f"{uri} line {number} is not an export item: {exc}") from None
        yield number, item


# ---- the ETL stage's reader ------------------------------------------------------------------------------------


class _Column:
    """One attribute's values while a file is read, with the rows they are in (items are sparse)."""

    __slots__ = ("convert", "rows", "values")

    def __init__(self, convert: Convert) -> None:
        self.convert = convert
        self.rows: list[int] = []
        self.values: list[Any] = []

    def take(self, n_row: int, arrow_type: pa.DataType) -> pa.Array:
        """The values so far as an Arrow array of ``n_row`` rows; the column starts again empty."""
        values = self.values
        if len(values) != n_row:
            values = [None] * n_row
            for row, value in zip(self.rows, self.values, strict=True):
                values[row] = value
        array = pa.array(values, arrow_type)
        self.rows, self.values = [], []
        return array


@functools.lru_cache(maxsize=16)
def _decoding(schema_text: str) -> tuple[pa.Schema, tuple[tuple[str, Convert], ...]]:
    schema = decode_schema(schema_text)
    try:
        return schema, tuple((f.name, converter(f.type)) for f in schema)
    except BadValue as exc:
        raise SnapshotError(f"the snapshot manifest's DynamoDB schema cannot be read: {exc}") from None


def decode(
    uri: str,
    raw: bytes,
    encoding: str,
    to_item: Callable[[dict[str, Any]], dict[str, Any]],
    schema_text: str,
    on_bad_value: str = "error",
) -> ReadResult:
    """The items of one data file as a table of the manifest's schema."""
    if on_bad_value not in ON_BAD_VALUE:
        raise ConfigError(f"on_bad_value {on_bad_value!r} is not one of: {', '.join(ON_BAD_VALUE)}")
    schema, converters = _decoding(schema_text)
    columns = {name: _Column(convert) for name, convert in converters}
    batches: list[pa.RecordBatch] = []
    n_row = n_bad = 0
    for number, item in items(uri, raw, encoding, to_item):
        for name, value in item.items():
            column = columns.get(name)
            if column is None:
                raise SnapshotError(
                    f"{uri} line {number}: attribute {name!r} is not in the snapshot manifest's schema: the data "
                    "changed after the manifest was built — build the manifest again"
                )
            try:
                column.values.append(column.convert(value))
            except BadValue as exc:
                if on_bad_value == "error":
                    raise SnapshotError(
                        f"{uri} line {number}: attribute {name!r}: {exc} (--on-bad-value null reads such values "
                        "as null)"
                    ) from None
                n_bad += 1
                continue
            column.rows.append(n_row)
        n_row += 1
        if n_row == BATCH_ROWS:
            batches.append(_batch(uri, schema, columns, n_row))
            n_row = 0
    if n_row or not batches:
        batches.append(_batch(uri, schema, columns, n_row))
    return ReadResult(pa.Table.from_batches(batches, schema), n_bad)


def _batch(uri: str, schema: pa.Schema, columns: Mapping[str, _Column], n_row: int) -> pa.RecordBatch:
    arrays = []
    for f in schema:
        try:
            arrays.append(columns[f.name].take(n_row, f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError) as exc:
            raise SnapshotError(f"{uri}: attribute {f.name!r} cannot be read as {f.type}: {exc}") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def read_file(file: FileToRead, reader: SnapshotReader, on_bad_value: str) -> ReadResult:
    """The ETL stage's reader for the ``dynamodb-json``, ``dynamodb-ion`` and ``dynamodb-incremental`` formats:
    one data file, its MD5 checked, its items decoded to the manifest's schema."""
    to_item = item_function(reader.format, reader.new_and_old_images)
    encoding = reader.encoding or ("ion" if reader.format == ITEMS_ION else "json")
    if reader.schema is None:
        raise SnapshotError(f"the snapshot manifest of {file.uri} has no DynamoDB schema: build the manifest again")
    raw = fetch(file.uri, file.extras.get(MD5))
    return decode(file.uri, raw, encoding, to_item, reader.schema, on_bad_value)


# ---- build: a survey of every item, then the manifest ----------------------------------------------------------


@dataclass
class FileSurvey:
    survey: Survey
    key_names: set[str]
    n_bad: int = 0
    first_bad: str | None = None


def survey_file(file: DataFile, summary: ExportSummary) -> FileSurvey:
    """Observe every item of one data file (MD5 and item count checked)."""
    raw = fetch(file.uri, file.md5)
    to_item = item_function(summary.reader_format, summary.new_and_old_images)
    result = FileSurvey(Survey(), set())
    for number, record in records(file.uri, raw, summary.encoding):
        try:
            item = to_item(record)
        except BadRecord as exc:
            raise SnapshotError(f"{file.uri} line {number} is not an export item: {exc}") from None
        if summary.incremental:
            result.key_names.update(record["Keys"])
        bad = result.survey.add(item)
        if bad is not None:
            result.n_bad += 1
            result.first_bad = result.first_bad or f"{file.uri} line {number}: {bad}"
    if result.survey.n_item != file.n_item:
        raise SnapshotError(
            f"{file.uri} holds {result.survey.n_item} items but the export's {FILES} says {file.n_item}: "
            "the file is incomplete — copy it again from the export"
        )
    return result


def export_schema(summary: ExportSummary, found: FileSurvey, maps: str, warnings: list[str]) -> pa.Schema:
    """Items: every attribute, sorted by name. Changes: ``_op``, ``_write_time``, the keys, the other attributes,
    ``_old_image``."""
    attributes = found.survey.attributes
    if not summary.incremental:
        return pa.schema(found.survey.fields(sorted(attributes), maps, warnings))
    keys = sorted(found.key_names)
    others = sorted(n for n in attributes if n not in found.key_names and n not in CHANGE_COLUMNS)
    old = [OLD_IMAGE] if OLD_IMAGE in attributes else []
    return pa.schema(
        [
            pa.field(OP, pa.string()),
            pa.field(WRITE_TIME, WRITE_TIME_TYPE),
            *found.survey.fields(keys + others + old, maps, warnings),
        ]
    )


def locate(files: Sequence[DataFile], known: Mapping[str, ObjectInfo], summary: ExportSummary) -> list[ObjectInfo]:
    """Size and ETag of every data file: from the listing, or a HEAD for those outside it (an incremental
    export's shared ``data/`` folder when the source is the export folder)."""

    def head(uri: str) -> ObjectInfo | None:
        try:
            return storage.head(uri)
        except FileNotFoundError:
            return None

    outside = [f.uri for f in files if f.uri not in known]
    heads = {uri: info for uri, info in zip(outside, map_io(head, outside), strict=True) if info is not None}
    missing = [uri for uri in outside if uri not in heads]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise SnapshotError(
            f"data file listed in {summary.files_uri} is missing: {missing[0]}{more} — the export is incomplete "
            "or was copied without it: copy the whole export folder (and AWSDynamoDB/data/ for incremental exports)"
        )
    return [known.get(f.uri) or heads[f.uri] for f in files]


def build_export(
    summary: ExportSummary,
    known: Mapping[str, ObjectInfo],
    manifest_uri_for: ManifestUriFor,
    progress: Progress,
    options: DynamoDBOptions,
) -> tuple[TableSnapshot, str]:
    """Survey one export's items and write its snapshot manifest; return the table and a note on the survey."""
    if summary.encoding == "ion":
        dynamodb_ion.ion()  # refuses at once, with the install hint, when amazon.ion is missing
    files = read_data_files(summary)
    infos = locate(files, known, summary)
    progress.start(f"read {summary.name} to decide attribute types", len(files))
    started = time.perf_counter()
    found = FileSurvey(Survey(), set())
    for one in map_io(lambda f: survey_file(f, summary), files, progress):
        found.survey.merge(one.survey)
        found.key_names |= one.key_names
        found.n_bad += one.n_bad
        found.first_bad = found.first_bad or one.first_bad
    seconds = time.perf_counter() - started

    warnings: list[str] = []
    schema = export_schema(summary, found, options.maps, warnings)
    n_item = found.survey.n_item
    if found.n_bad:
        warnings.append(
            f"{found.n_bad:,} item(s) hold values that are not valid DynamoDB JSON, e.g. {found.first_bad}: the ETL "
            "stage stops at them unless run with --on-bad-value null"
        )
    if not n_item:
        warnings.append("the export holds no items: its table has no columns")
    if summary.item_count is not None and summary.item_count != n_item:
        warnings.append(f"{SUMMARY} says {summary.item_count:,} items but the data files hold {n_item:,}")
    reader = SnapshotReader(
        format=summary.reader_format,
        schema=encode_schema(schema),
        encoding=summary.encoding,
        maps=options.maps,
        keys=tuple(sorted(found.key_names)) if summary.incremental else (),
        new_and_old_images=summary.new_and_old_images if summary.incremental else True,
    )
    table = files_table(
        [i.uri for i in infos],
        [i.size for i in infos],
        [f.n_item for f in files],
        [i.etag for i in infos],
        **{MD5: pa.array([f.md5 for f in files], pa.string())},
    )
    manifest = write_manifest(
        manifest_uri_for(DATABASE, summary.table, summary.snapshot_time),
        table,
        {**SnapshotDetails(reader=reader, source=summary.folder).to_dict(), "dynamodb_export": dict(summary.fields)},
    )
    snapshot = TableSnapshot.of(manifest, summary.name, DATABASE, summary.table, summary.snapshot_time, warnings)
    rate = f", {n_item / seconds:,.0f} items/s" if seconds > 0 and n_item else ""
    note = (
        f"{summary.name}: read all {n_item:,} items ({len(files)} data files, {format_size(manifest.size)}) to decide "
        f"each attribute's type, MD5 checksums verified ({seconds:.1f} s{rate})"
    )
    return snapshot, note


def export_folders(listing: Sequence[ObjectInfo]) -> tuple[list[str], list[str]]:
    """``(folders of finished exports, export folders without both manifests)``, each ending with ``/``."""
    names: dict[str, set[str]] = {}
    for info in listing:
        folder, _, name = info.uri.rpartition("/")
        if name in (SUMMARY, FILES, STARTED):
            names.setdefault(folder + "/", set()).add(name)
    finished = sorted(f for f, found in names.items() if {SUMMARY, FILES} <= found)
    unfinished = sorted(
        f
        for f, found in names.items()
        if not {SUMMARY, FILES} <= found and storage.base_name(storage.parent(f)) == EXPORTS_FOLDER
    )
    return finished, unfinished


def looks_like(source: str, listing: list[ObjectInfo]) -> bool:
    """A DynamoDB export source holds ``manifest-summary.json`` and ``manifest-files.json`` side by side, or
    an unfinished export folder below ``AWSDynamoDB/`` (which :func:`build` then reports)."""
    finished, unfinished = export_folders(listing)
    return bool(finished or unfinished)


def build(
    source: str,
    listing: list[ObjectInfo],
    manifest_uri_for: ManifestUriFor,
    progress: Progress | None = None,
    options: DynamoDBOptions | None = None,
) -> SourceBuildResult:
    """One snapshot manifest per finished export below ``source``."""
    progress, options = progress or NoProgress(), options or DynamoDBOptions()
    source = storage.as_dir(source)
    finished, unfinished = export_folders(listing)
    warnings = [
        f"{folder} is not a finished export (it lacks {SUMMARY} or {FILES}: still running, or failed): skipped"
        for folder in unfinished
    ]
    if not finished:
        unfinished_note = (
            f"; {unfinished[0]}"
            + (f" and {len(unfinished) - 1} more" if len(unfinished) > 1 else "")
            + " lack them: an export still running, or one that failed"
            if unfinished
            else ""
        )
        raise SnapshotError(
            f"no finished DynamoDB export under {source}: expected {EXPORTS_FOLDER}/<export-id>/{SUMMARY} and "
            f"{FILES}{unfinished_note}"
        )
    summaries = sorted(map_io(read_summary, finished), key=lambda s: (s.name, s.snapshot_time or ""))
    _refuse_twins(summaries)
    known = {info.uri: info for info in listing}
    tables, notes = [], []
    for summary in summaries:
        table, note = build_export(summary, known, manifest_uri_for, progress, options)
        tables.append(table)
        notes.append(note)
    if len(summaries) > 1:
        notes.insert(0, f"{len(summaries)} exports found: each is one snapshot")
    return SourceBuildResult(KIND, source, tuple(tables), tuple(warnings), tuple(notes))


def _refuse_twins(summaries: Sequence[ExportSummary]) -> None:
    seen: dict[tuple[str, str | None], str] = {}
    for s in summaries:
        twin = seen.setdefault((s.name, s.snapshot_time), s.folder)
        if twin != s.folder:
            raise SnapshotError(
                f"two exports of {s.name} at {s.snapshot_time}: {twin} and {s.folder} — point the source at one "
                "export folder, or remove the copy"
            )
