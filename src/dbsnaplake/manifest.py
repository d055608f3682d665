"""Manifests: a summary JSON (``manifest``, ``size``, ``n_record``, extras) and a data Parquet (one row per file).

The format is the one the original dbsnaplake and s3manifesto read and write, so existing manifests load.
File lists are Arrow tables throughout, never per-row Python objects.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import storage
from .errors import SnapshotError

URI, SIZE, N_RECORD, ETAG = "uri", "size", "n_record", "etag"
READER = "reader"
"""Summary key a source sets to say how its files are read: ``{"format": ..., "schema": ..., ...}`` (see
:func:`dbsnaplake.readers.read_snapshot_file`); planning copies it into every snapshot file group."""
FILES_SCHEMA = pa.schema([(URI, pa.string()), (SIZE, pa.int64()), (N_RECORD, pa.int64()), (ETAG, pa.string())])


@dataclass(frozen=True)
class Manifest:
    """A list of files with their sizes and record counts (``n_record`` is null where unknown)."""

    summary_uri: str
    data_uri: str
    files: pa.Table
    extra: Mapping[str, Any] = field(default_factory=dict)
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


def data_uri_for(summary_uri: str) -> str:
    """``.../manifest-summary.json`` → ``.../manifest-data.parquet``; ``.../x.json`` → ``.../x-data.parquet``."""
    folder, name = summary_uri.rsplit("/", 1)
    stem = name[: -len(".json")] if name.endswith(".json") else name
    data_name = stem.replace("manifest-summary", "manifest-data") if "manifest-summary" in stem else stem + "-data"
    return f"{folder}/{data_name}.parquet"


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


def _normalize_files(table: pa.Table, where: str) -> pa.Table:
    if URI not in table.column_names:
        raise SnapshotError(f"manifest data {where} has no 'uri' column (columns: {', '.join(table.column_names)})")
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for f in FILES_SCHEMA:
        if f.name in table.column_names:
            columns[f.name] = table[f.name].cast(f.type)
        else:
            columns[f.name] = pa.nulls(table.num_rows, f.type)
    for name in table.column_names:
        columns.setdefault(name, table[name])
    return pa.table(columns)


def read_manifest(summary_uri: str) -> Manifest:
    """Load a manifest from its summary JSON (or straight from a manifest-data Parquet file)."""
    summary_uri = storage.normalize_uri(summary_uri)
    digest = hashlib.sha256()
    if summary_uri.endswith(".parquet"):
        summary: dict[str, Any] = {"manifest": summary_uri}
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
            summary = json.loads(raw)
            data_uri = summary["manifest"]
        except (ValueError, KeyError, TypeError):
            raise SnapshotError(
                f"manifest summary {summary_uri} is not a JSON object with a 'manifest' key "
                "pointing to the manifest-data Parquet file"
            ) from None
    data_uri = storage.normalize_uri(str(summary["manifest"]))
    try:
        data = storage.read_bytes(data_uri)
        digest.update(data)
        table = pq.read_table(io.BytesIO(data))
    except FileNotFoundError:
        raise SnapshotError(f"manifest data file not found: {data_uri} (named by {summary_uri})") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise SnapshotError(f"manifest data file {data_uri} is not a readable Parquet file: {exc}") from None
    extra = {k: v for k, v in summary.items() if k not in ("manifest", SIZE, N_RECORD)}
    files = _normalize_files(table, data_uri)
    return Manifest(summary_uri=summary_uri, data_uri=data_uri, files=files, extra=extra, digest=digest.hexdigest())


def write_manifest(
    summary_uri: str, files: pa.Table, extra: Mapping[str, Any] | None = None, data_uri: str | None = None
) -> Manifest:
    """Write the data Parquet first, then the summary JSON that points to it (so a summary is never dangling)."""
    data_uri = data_uri or data_uri_for(summary_uri)
    files = _normalize_files(files, data_uri)
    buffer = io.BytesIO()
    pq.write_table(files, buffer, compression="zstd")
    storage.write_bytes(data_uri, buffer.getvalue())
    manifest = Manifest(summary_uri=summary_uri, data_uri=data_uri, files=files, extra=dict(extra or {}))
    summary = {"manifest": data_uri, SIZE: manifest.size, N_RECORD: manifest.n_record, **manifest.extra}
    storage.write_bytes(summary_uri, json.dumps(summary, indent=2, default=str).encode())
    return manifest
