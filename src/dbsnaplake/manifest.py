"""Manifests: a summary JSON and a data Parquet (one row per file).

Both files are in s3manifesto's format, so the original dbsnaplake and s3manifesto 0.4.1 and 1.0.0 read every
manifest we write, and we read theirs:

* the summary holds exactly ``manifest`` (the data file's URI), ``size``, ``n_record``, ``fingerprint`` and
  ``details`` (0.4.1 needs each key, 1.0.0 refuses any other: ``ManifestSummary(**summary)``);
* the data Parquet holds exactly ``uri``, ``size``, ``n_record`` and ``etag`` (1.0.0 builds ``DataFile(**row)``
  from each row, so one more column fails it).

Our per-file extras (a staging file's ``partition`` and ``rows_fingerprint``, a source's own columns) go to a
third Parquet file, row for row with the data file, that ``details.file_columns`` names (``manifest-columns/``
beside ``manifest-data/``, so the original's listing of ``manifest-data/`` does not see it). Such a manifest's
``fingerprint`` is the SHA-256 of the two Parquet files' bytes, checked when it is read: one file rewritten
without the other is refused. A manifest written by s3manifesto or by an earlier release, with extra columns in
the data file, loads as before.

A group manifest's ``details`` is its header record (:mod:`dbsnaplake.records`); reading a group manifest as
the wrong kind fails naming the URI and the kind it is. File lists are Arrow tables, never per-row objects.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.errors import RecordError, SnapshotError
from dbsnaplake.progress import Progress
from dbsnaplake.records import ManifestSummary, Record, SnapshotDetails, StoredRecord
from dbsnaplake.storage.parallel import map_io

URI, SIZE, N_RECORD, ETAG = "uri", "size", "n_record", "etag"
PARTITION = "partition"
"""A staging manifest's column: the hive path of each staging file's partition."""
ROWS_FINGERPRINT = "rows_fingerprint"
"""A staging manifest's column (uint64): the fingerprint of each staging file's rows, as ETL wrote them (see
:mod:`dbsnaplake.frames.fingerprint`)."""
FILES_SCHEMA = pa.schema([(URI, pa.string()), (SIZE, pa.int64()), (N_RECORD, pa.int64()), (ETAG, pa.string())])
"""The data Parquet's columns: s3manifesto's ``DataFile`` fields, no more."""
PARQUET_SCHEMA, UNCOMPRESSED_SIZE = "parquet_schema", "uncompressed_size"
"""A snapshot manifest's columns where dbsnaplake built it from the files: what each Parquet file's footer said
then, for the size and ETag listed (its Arrow schema, encoded; its uncompressed bytes); null for other files.
Planning takes them instead of reading every footer again (see :mod:`dbsnaplake.stages.plan`)."""
FOOTER_COLUMNS = (PARQUET_SCHEMA, UNCOMPRESSED_SIZE)
FILE_COLUMNS = "file_columns"
"""The ``details`` key naming the Parquet file of a manifest's extra per-file columns."""


H = TypeVar("H", bound=StoredRecord)


@dataclass(frozen=True)
class Manifest:
    """A list of files with their sizes and record counts (``n_record`` is null where unknown)."""

    summary_uri: str
    data_uri: str
    files: pa.Table
    details: Mapping[str, Any] = field(default_factory=dict)
    """The summary's ``details``: a group manifest's header, a snapshot manifest's source and reader."""
    digest: str = ""
    """SHA-256 of the summary and data bytes as read: tells whether a manifest changed between two runs."""

    @property
    def n_file(self) -> int:
        return int(self.files.num_rows)

    @property
    def size(self) -> int:
        return int(pc.sum(self.files[SIZE]).as_py() or 0)

    @property
    def n_record(self) -> int | None:
        """Total records, or ``None`` when any file's count is unknown."""
        if self.files[N_RECORD].null_count:
            return None
        total: int = pc.sum(self.files[N_RECORD]).as_py() or 0
        return total

    def column(self, name: str) -> list[Any]:
        return list(self.files[name].to_pylist())

    def header(self, kind: type[H]) -> H:
        """The group manifest's header record; a manifest of another kind fails naming the URI and its kind."""
        if "kind" not in self.details:
            raise RecordError(
                f"{self.summary_uri} is not a {kind.KIND} manifest: it has no header (a snapshot manifest?)"
            )
        return kind.from_dict(self.details, self.summary_uri)

    @property
    def snapshot_details(self) -> SnapshotDetails:
        """A snapshot manifest's source and reader (both optional)."""
        return SnapshotDetails.from_dict(self.details, self.summary_uri)


def data_uri_for(summary_uri: str) -> str:
    """``.../manifest-summary.json`` → ``.../manifest-data.parquet``; ``.../x.json`` → ``.../x-data.parquet``."""
    folder, name = summary_uri.rsplit("/", 1)
    stem = name[: -len(".json")] if name.endswith(".json") else name
    data_name = stem.replace("manifest-summary", "manifest-data") if "manifest-summary" in stem else stem + "-data"
    return f"{folder}/{data_name}.parquet"


def file_columns_uri_for(data_uri: str) -> str:
    """Where a data file's extra per-file columns go: ``.../manifest-data/manifest-data-3.parquet`` →
    ``.../manifest-columns/manifest-columns-3.parquet``, ``.../x.parquet`` → ``.../x-columns.parquet``."""
    folder, name = data_uri.rsplit("/", 1)
    stem = name[: -len(".parquet")] if name.endswith(".parquet") else name
    if stem.startswith("manifest-data"):
        stem = "manifest-columns" + stem[len("manifest-data") :]
        parent, _, last = folder.rpartition("/")
        if last == "manifest-data":
            folder = f"{parent}/manifest-columns"
        return f"{folder}/{stem}.parquet"
    return f"{folder}/{stem}-columns.parquet"


def files_table(
    uris: list[str],
    sizes: list[int],
    n_records: list[int | None],
    etags: list[str | None] | None = None,
    **extra_columns: pa.Array | list[Any],
) -> pa.Table:
    """Build a manifest's file table from columns."""
    columns: dict[str, Any] = {
        URI: pa.array(uris, pa.string()),
        SIZE: pa.array(sizes, pa.int64()),
        N_RECORD: pa.array(n_records, pa.int64()),
        ETAG: pa.array(etags if etags is not None else [None] * len(uris), pa.string()),
    }
    columns.update(extra_columns)
    return pa.table(columns)


def footer_columns(schemas: Sequence[str | None], uncompressed: Sequence[int | None]) -> dict[str, pa.Array]:
    """The :data:`FOOTER_COLUMNS` of the files whose footers were read (encoded schema, uncompressed bytes; ``None``
    for the others), as ``files_table`` takes them; none when no footer was read."""
    if all(schema is None for schema in schemas):
        return {}
    return {
        PARQUET_SCHEMA: pa.array(schemas, pa.string()),
        UNCOMPRESSED_SIZE: pa.array(uncompressed, pa.int64()),
    }


def _normalize_files(table: pa.Table, where: str) -> pa.Table:
    if URI not in table.column_names:
        raise SnapshotError(f"manifest data {where} has no 'uri' column (columns: {', '.join(table.column_names)})")
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for f in FILES_SCHEMA:
        if f.name in table.column_names:
            columns[f.name] = table[f.name].cast(f.type)
        else:
            columns[f.name] = pa.nulls(table.num_rows, f.type)
    columns[ETAG] = pc.utf8_trim(columns[ETAG], '"')  # as boto3 gives them, quoted; the store's are not
    for name in table.column_names:
        columns.setdefault(name, table[name])
    return pa.table(columns)


def read_manifest(summary_uri: str) -> Manifest:
    """Load a manifest from its summary JSON (or straight from a manifest-data Parquet file)."""
    summary_uri = storage.normalize_uri(summary_uri)
    digest = hashlib.sha256()
    if summary_uri.endswith(".parquet"):
        summary = ManifestSummary(manifest=summary_uri)
    else:
        try:
            raw = storage.read_bytes(summary_uri)
        except FileNotFoundError:
            raise SnapshotError(
                f"manifest not found: {summary_uri} — check the path, or write one with "
                "'dbsnaplake manifest build SOURCE --out URI'"
            ) from None
        digest.update(raw)
        try:
            summary = ManifestSummary.from_dict(json.loads(raw), summary_uri)
        except (ValueError, RecordError):
            raise SnapshotError(
                f"manifest summary {summary_uri} is not a JSON object with a 'manifest' key "
                "pointing to the manifest-data Parquet file"
            ) from None
    data_uri = storage.normalize_uri(str(summary.manifest))
    table, data = _read_parquet(data_uri, summary_uri)
    digest.update(data)
    files = _normalize_files(table, data_uri)
    columns_uri = summary.details.get(FILE_COLUMNS)
    if isinstance(columns_uri, str):
        columns_uri = storage.normalize_uri(columns_uri)
        extra, extra_bytes = _read_parquet(columns_uri, summary_uri)
        digest.update(extra_bytes)
        if summary.fingerprint != hashlib.sha256(extra_bytes + data).hexdigest():
            raise SnapshotError(
                f"manifest {summary_uri} does not match its files {data_uri} and {columns_uri} (its fingerprint "
                "differs): they were changed or half rewritten after it — rebuild a snapshot manifest, or rerun "
                "with --fresh"
            )
        for name in extra.column_names:
            if name not in files.column_names:
                files = files.append_column(name, extra[name])
    return Manifest(summary_uri, data_uri, files, dict(summary.details), digest.hexdigest())


def _read_parquet(uri: str, named_by: str) -> tuple[pa.Table, bytes]:
    """A manifest's Parquet file, and its bytes."""
    try:
        data = storage.read_bytes(uri)
        return pq.read_table(io.BytesIO(data)), data
    except FileNotFoundError:
        raise SnapshotError(f"manifest file not found: {uri} (named by {named_by})") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise SnapshotError(f"manifest file {uri} is not a readable Parquet file: {exc}") from None


def read_group_manifest(summary_uri: str, kind: type[H]) -> tuple[Manifest, H]:
    """A group manifest and its header, which must be of ``kind``."""
    manifest = read_manifest(summary_uri)
    return manifest, manifest.header(kind)


def write_manifest(
    summary_uri: str, files: pa.Table, details: Mapping[str, Any] | Record | None = None, data_uri: str | None = None
) -> Manifest:
    """Write the Parquet files first (extra per-file columns, then the data file), then the summary JSON that
    points to them (so a summary is never dangling)."""
    data_uri = data_uri or data_uri_for(summary_uri)
    files = _normalize_files(files, data_uri)
    shown = details.to_dict() if isinstance(details, Record) else dict(details or {})
    shown.pop(FILE_COLUMNS, None)
    fingerprint = hashlib.sha256()  # of the extra columns' bytes and the data file's: read_manifest checks it
    extra_names = [name for name in files.column_names if name not in FILES_SCHEMA.names]
    if extra_names:
        columns_uri = file_columns_uri_for(data_uri)
        fingerprint.update(_write_parquet(columns_uri, files.select(extra_names)))
        shown[FILE_COLUMNS] = columns_uri
    fingerprint.update(_write_parquet(data_uri, files.select(FILES_SCHEMA.names)))
    manifest = Manifest(summary_uri=summary_uri, data_uri=data_uri, files=files, details=shown)
    summary = ManifestSummary(
        manifest=data_uri,
        size=manifest.size,
        n_record=manifest.n_record,
        fingerprint=fingerprint.hexdigest(),
        details=shown,
    )
    storage.write_bytes(summary_uri, json.dumps(summary.to_dict(), indent=2, default=str).encode())
    return manifest


def _write_parquet(uri: str, table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    data = buffer.getvalue()
    storage.write_bytes(uri, data)
    return data


def read_group_manifests(uris: Sequence[str], kind: type[H], progress: Progress | None = None) -> list[tuple[Manifest, H]]:
    """Many group manifests of one kind, read in parallel."""
    return map_io(lambda uri: read_group_manifest(uri, kind), list(uris), progress)
