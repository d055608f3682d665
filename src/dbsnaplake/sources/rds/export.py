"""AWS RDS / Aurora snapshot exports to S3: recognise one, and write one snapshot manifest per exported table.

An export's root folder (``s3://bucket/prefix/<export id>/``) holds::

    export_info_<id>.json                          status, percentProgress, snapshotTime, sourceArn, ...
    export_tables_info_<id>_from_<a>_to_<b>.json   {"perTableStatus": [{target, status, schemaMetadata}, ...]}
    <database>/<schema>.<table>/<batch>/part-<n>-<uuid>[-c000].gz.parquet

PostgreSQL targets are ``db.schema.table`` (folder ``db/schema.table``), MySQL ones ``db.table`` (folder
``db/db.table``). A target whose folder is not there is looked for in the one folder of its database whose name
ends in ``.<table>``; more than one such folder, or data folders that no target explains, stop the build: the
layout is not one this module knows, and it does not guess. Every Parquet file below a table's folder is
read (batch numbers may have gaps; ``_SUCCESS`` markers are skipped). Record counts and schemas come from the
Parquet footers (one ranged read per file), never from the data.

A table whose status is not ``COMPLETE`` is skipped with a warning (the other tables are still usable); an
export whose own status is not ``COMPLETE`` at 100 % is refused. Types the export wrote as strings are
restored by the ETL stage as :mod:`.rds_types` describes; the manifest's ``reader`` carries the plan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.errors import SnapshotError
from dbsnaplake.frames.readers import is_ignorable, uncompressed_bytes
from dbsnaplake.frames.schema import encode_schema, unify
from dbsnaplake.manifest import files_table, footer_columns, write_manifest
from dbsnaplake.progress import Progress
from dbsnaplake.records import ColumnRestore, SnapshotDetails, SnapshotReader
from dbsnaplake.sources.base import ManifestUriFor, SourceBuildResult, TableSnapshot
from dbsnaplake.sources.rds.restore import (
    DECIMAL,
    READER_FORMAT,
    OriginalColumn,
    plan_restores,
    restored_schema,
    type_kind,
)
from dbsnaplake.storage.parallel import map_io

KIND = "rds-export"
COMPLETE = "COMPLETE"
_EXPORT_INFO = re.compile(r"^export_info_(.+)\.json$")
_TABLES_INFO = re.compile(r"^export_tables_info_(.+)_from_\d+_to_\d+\.json$")
_PATH_CHARS = re.compile(r'[\\`" ]')
"""Characters an export writes as ``_`` in S3 paths."""
_JAVA_TIMES = ("%b %d, %Y %I:%M:%S %p", "%b %d, %Y, %I:%M:%S %p")  # "Jan 5, 2024 3:04:05 PM"
SHOWN = 5
"""How many unexplained folders an error message lists."""


# ---- the export's metadata, mapped once from its camelCase JSON -----------------------------------------------


@dataclass(frozen=True)
class ExportInfo:
    uri: str
    export_id: str
    snapshot_time: str | None
    """ISO 8601 UTC, ``None`` when the export does not say it in a form this module reads."""
    source_arn: str | None


@dataclass(frozen=True)
class TableEntry:
    """One ``perTableStatus`` item that names a table."""

    target: str
    status: str
    columns: tuple[OriginalColumn, ...]
    warning: str | None = None

    @property
    def database(self) -> str:
        return self.target.partition(".")[0]

    @property
    def table(self) -> str:
        """``public.orders`` (PostgreSQL), ``orders`` (MySQL)."""
        return self.target.partition(".")[2]


def iso_utc(value: Any) -> str | None:
    """An export's time (ISO 8601, epoch milliseconds, or Java's ``Jan 5, 2024 3:04:05 PM``) as ISO UTC."""
    if value is None or isinstance(value, bool):
        return None
    moment: datetime | None = None
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, timezone.utc)
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            for fmt in _JAVA_TIMES:
                try:
                    moment = datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_export_info(uri: str, data: Any) -> ExportInfo:
    """Check that the export finished; refuse it otherwise."""
    if not isinstance(data, dict):
        raise SnapshotError(f"{uri} is not a JSON object: is this an RDS snapshot export?")
    named = _EXPORT_INFO.match(storage.base_name(uri))
    export_id = str(data.get("exportTaskIdentifier") or (named.group(1) if named else "?"))
    status = str(data.get("status", "")).upper()
    progress = data.get("percentProgress")
    try:
        done = progress is not None and float(progress) == 100
    except (TypeError, ValueError):
        done = False
    if status != COMPLETE or not done:
        raise SnapshotError(
            f"RDS export {export_id!r} is not complete (status {data.get('status')!r}, percentProgress "
            f"{progress!r} in {uri}): wait until 'aws rds describe-export-tasks --export-task-identifier "
            f"{export_id}' says COMPLETE; a failed or canceled export has to be run again"
        )
    return ExportInfo(uri, export_id, iso_utc(data.get("snapshotTime")), data.get("sourceArn"))


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def parse_original_column(data: Mapping[str, Any]) -> OriginalColumn:
    return OriginalColumn(
        name=str(data["columnName"]),
        original_type=str(data.get("originalType", "")),
        exported_type=data.get("expectedExportedType"),
        char_max_length=_int(data.get("originalCharMaxLength")),
        num_precision=_int(data.get("originalNumPrecision")),
        num_scale=_int(data.get("originalNumScale")),
        datetime_precision=_int(data.get("originalDateTimePrecision")),
    )


def parse_tables_info(uri: str, data: Any) -> tuple[list[TableEntry], list[str]]:
    """The tables of one ``export_tables_info`` file, and its warnings (items with a ``warningMessage``)."""
    items = data.get("perTableStatus") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise SnapshotError(f"{uri} has no 'perTableStatus' list: is this an RDS snapshot export?")
    entries: list[TableEntry] = []
    warnings: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            raise SnapshotError(f"{uri}: a 'perTableStatus' item is not a JSON object: {item!r}")
        target, message = item.get("target"), item.get("warningMessage")
        metadata = item.get("schemaMetadata")
        if message and not metadata:
            warnings.append(f"{target}: {message}" if target else str(message))
            continue
        if not target or "." not in str(target):
            raise SnapshotError(
                f"{uri}: a table entry has target {target!r}; expected 'db.schema.table' (PostgreSQL) or "
                "'db.table' (MySQL)"
            )
        mappings = (metadata or {}).get("originalTypeMappings") or []
        try:
            columns = tuple(parse_original_column(m) for m in mappings)
        except (KeyError, TypeError, AttributeError):
            raise SnapshotError(f"{uri}: the originalTypeMappings of {target} lack a 'columnName'") from None
        entries.append(TableEntry(str(target), str(item.get("status", "")).upper(), columns, message or None))
    return entries, warnings


def _read_json(uri: str) -> Any:
    try:
        return json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        raise SnapshotError(f"{uri} disappeared while the export was read: list it again") from None
    except ValueError as exc:
        raise SnapshotError(f"{uri} is not valid JSON ({exc}): the export is damaged") from None


# ---- from targets to folders -------------------------------------------------------------------------------------


def path_safe(name: str) -> str:
    return _PATH_CHARS.sub("_", name)


def expected_folders(target: str) -> tuple[str, ...]:
    """``db.public.orders`` → ``("db/public.orders", "db/db.public.orders")``; ``db.orders`` → ``("db/db.orders",)``."""
    database, _, rest = target.partition(".")
    names = (rest, f"{database}.{rest}") if "." in rest else (f"{database}.{rest}",)
    return tuple(f"{path_safe(database)}/{path_safe(n)}" for n in names)


def locate_folders(targets: Sequence[str], folders: set[str]) -> tuple[dict[str, str], list[str]]:
    """Each target's data folder (relative to the export root), and notes on those found by name suffix.
    Targets without a folder are left out; a suffix that fits several folders is an error."""
    found: dict[str, str] = {}
    for target in targets:
        exact = next((f for f in expected_folders(target) if f in folders), None)
        if exact is not None:
            found[target] = exact
    claimed = set(found.values())
    notes: list[str] = []
    for target in targets:
        if target in found:
            continue
        database = path_safe(target.partition(".")[0])
        suffix = "." + path_safe(target.rsplit(".", 1)[-1])
        fits = sorted(f for f in folders - claimed if f.startswith(database + "/") and f.endswith(suffix))
        if len(fits) > 1:
            raise SnapshotError(
                f"table {target}: no folder {expected_folders(target)[0]}/, and several folders could hold it: "
                f"{', '.join(f + '/' for f in fits)} — export this table on its own, or build a manifest for the "
                "right folder with 'dbsnaplake manifest build FOLDER'"
            )
        if fits:
            found[target] = fits[0]
            claimed.add(fits[0])
            notes.append(f"{target}: files found in {fits[0]}/ (expected {expected_folders(target)[0]}/)")
    return found, notes


# ---- footers ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Footer:
    schema: pa.Schema
    n_record: int
    uncompressed_size: int
    samples: Mapping[str, tuple[str, ...]]
    """Min/max statistics of the string columns asked for (a numeric's scale shows in its values)."""


def read_footer(uri: str, size: int | None, sample_columns: frozenset[str] = frozenset()) -> Footer:
    """Schema, row count and some string statistics from one file's footer: one ranged read."""
    try:
        with storage.open_input_file(uri, size) as f:
            meta = pq.ParquetFile(f).metadata
            schema = meta.schema.to_arrow_schema()
    except FileNotFoundError:
        raise SnapshotError(f"{uri} disappeared while the export was read: list it again") from None
    except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
        raise SnapshotError(f"{uri} is not a readable Parquet file (corrupt or truncated?): {exc}") from None
    samples: dict[str, list[str]] = {}
    for group_index in range(meta.num_row_groups if sample_columns else 0):
        group = meta.row_group(group_index)
        for column_index in range(group.num_columns):
            column = group.column(column_index)
            stats = column.statistics if column.is_stats_set else None
            if column.path_in_schema in sample_columns and stats is not None and stats.has_min_max:
                for value in (stats.min, stats.max):
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    samples.setdefault(column.path_in_schema, []).append(text)
    return Footer(schema, meta.num_rows, uncompressed_bytes(meta), {k: tuple(v) for k, v in samples.items()})


def _scale_unknown(columns: Sequence[OriginalColumn]) -> frozenset[str]:
    """Numeric columns whose scale only their values can tell."""
    out = set()
    for column in columns:
        kind, args = type_kind(column.original_type)
        if kind == DECIMAL and len(args) < 2 and column.num_scale is None:
            out.add(column.name)
    return frozenset(out)


# ---- the source interface -----------------------------------------------------------------------------------------


def _relative_names(source: str, listing: list[storage.ObjectInfo]) -> dict[str, storage.ObjectInfo]:
    root = storage.as_dir(source)
    return {i.uri[len(root) :]: i for i in listing if i.uri.startswith(root)}


def looks_like(source: str, listing: list[storage.ObjectInfo]) -> bool:
    """An ``export_info_*.json`` and an ``export_tables_info_*.json`` directly in the source folder."""
    names = [n for n in _relative_names(source, listing) if "/" not in n]
    return any(_EXPORT_INFO.match(n) for n in names) and any(_TABLES_INFO.match(n) for n in names)


def _export_info(root: str, names: Mapping[str, storage.ObjectInfo]) -> ExportInfo:
    infos = sorted(n for n in names if "/" not in n and _EXPORT_INFO.match(n))
    if not infos:
        deeper = sorted(n for n in names if _EXPORT_INFO.match(storage.base_name(n)))
        hint = f": did you mean {storage.join(root, storage.parent(deeper[0]))}?" if deeper else ""
        raise SnapshotError(f"{root} holds no export_info_<id>.json, so it is not the root of an RDS export{hint}")
    if len(infos) > 1:
        raise SnapshotError(f"{root} holds several exports ({', '.join(infos)}): give the folder of one export")
    uri = names[infos[0]].uri
    return parse_export_info(uri, _read_json(uri))


def _table_entries(
    root: str, names: Mapping[str, storage.ObjectInfo], info: ExportInfo
) -> tuple[list[TableEntry], list[str]]:
    files = sorted(n for n in names if "/" not in n and (m := _TABLES_INFO.match(n)) and m.group(1) == info.export_id)
    if not files:
        raise SnapshotError(
            f"{root} has no export_tables_info_{info.export_id}_from_*_to_*.json: the export is incomplete "
            "or its files were moved — copy the whole export folder"
        )
    entries: list[TableEntry] = []
    warnings: list[str] = []
    for data, name in zip(map_io(lambda n: _read_json(names[n].uri), files), files, strict=True):
        found, said = parse_tables_info(names[name].uri, data)
        entries.extend(found)
        warnings.extend(said)
    seen: set[str] = set()
    for entry in entries:
        if entry.target in seen:
            raise SnapshotError(f"{root}: table {entry.target} is listed twice in the export_tables_info files")
        seen.add(entry.target)
    return entries, warnings


@dataclass(frozen=True)
class _Folders:
    data: dict[str, list[storage.ObjectInfo]]
    """``db/schema.table`` → its Parquet files."""
    other: dict[str, list[str]]
    """``db/schema.table`` → files that are neither Parquet nor markers."""
    stray: list[str]
    """Files outside any table folder."""


def _folders(names: Mapping[str, storage.ObjectInfo]) -> _Folders:
    data: dict[str, list[storage.ObjectInfo]] = {}
    other: dict[str, list[str]] = {}
    stray: list[str] = []
    for name, info in names.items():
        parts = name.split("/")
        if len(parts) == 1 or is_ignorable(name):
            continue  # the export's JSON files, markers
        if len(parts) < 3:
            stray.append(name)
        elif name.lower().endswith(".parquet"):
            data.setdefault("/".join(parts[:2]), []).append(info)
        else:
            other.setdefault("/".join(parts[:2]), []).append(name)
    return _Folders(data, other, stray)


def build(
    source: str, listing: list[storage.ObjectInfo], manifest_uri_for: ManifestUriFor, progress: Progress
) -> SourceBuildResult:
    """Write a snapshot manifest for every complete table of the export at ``source``."""
    root = storage.as_dir(source)
    names = _relative_names(root, listing)
    info = _export_info(root, names)
    entries, warnings = _table_entries(root, names, info)
    notes: list[str] = []
    if info.snapshot_time is None:
        warnings.append(f"{info.uri}: no snapshotTime this module can read; the tables have no snapshot time")
    folders = _folders(names)
    located, found_notes = locate_folders([e.target for e in entries], set(folders.data))
    notes.extend(found_notes)
    unexplained = sorted(set(folders.data) - set(located.values()))

    usable: list[TableEntry] = []
    for entry in entries:
        if entry.status != COMPLETE:
            warnings.append(f"{entry.target}: skipped, its export status is {entry.status or 'missing'}, not COMPLETE")
        elif entry.target in located:
            usable.append(entry)
        elif unexplained:
            raise SnapshotError(
                f"table {entry.target}: no folder {expected_folders(entry.target)[0]}/ in {root}, and the export "
                f"holds data folders no table explains: {', '.join(f + '/' for f in unexplained[:SHOWN])} — this "
                "is not a folder layout of RDS exports that dbsnaplake knows; build a manifest per folder with "
                "'dbsnaplake manifest build FOLDER'"
            )
        else:
            warnings.append(
                f"{entry.target}: skipped, no data files under {expected_folders(entry.target)[0]}/ (an empty table?)"
            )
    warnings.extend(f"{f}/: {len(folders.data[f])} data files that no table entry names, ignored" for f in unexplained)
    warnings.extend(f"{n}: not inside a <database>/<table>/ folder, ignored" for n in folders.stray)
    if not usable:
        raise SnapshotError(
            f"RDS export {info.export_id!r} at {root} has no complete table with data files"
            + "".join(f"\n  {w}" for w in warnings)
        )

    work = [(entry, info_) for entry in usable for info_ in folders.data[located[entry.target]]]
    sampled = {entry.target: _scale_unknown(entry.columns) for entry in usable}
    progress.start("read export file footers", len(work))
    footers = map_io(lambda job: read_footer(job[1].uri, job[1].size, sampled[job[0].target]), work, progress)
    by_table: dict[str, list[tuple[storage.ObjectInfo, Footer]]] = {}
    for (entry, object_info), footer in zip(work, footers, strict=True):
        by_table.setdefault(entry.target, []).append((object_info, footer))

    progress.start("write table manifests", len(usable))

    def write(entry: TableEntry) -> tuple[TableSnapshot, list[str]]:
        folder = located[entry.target]
        others = folders.other.get(folder, [])
        return _write_table(root, info, entry, by_table[entry.target], others, manifest_uri_for)

    tables = map_io(write, usable, progress)
    for table, column_notes in tables:
        notes.extend(f"{table.name}: {n}" for n in column_notes)
    notes.append(f"record counts from the Parquet footers of {len(work):,} files (no data read)")
    return SourceBuildResult(
        kind=KIND,
        source=root,
        tables=tuple(t for t, _ in tables),
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


def _write_table(
    root: str,
    info: ExportInfo,
    entry: TableEntry,
    files: list[tuple[storage.ObjectInfo, Footer]],
    others: list[str],
    manifest_uri_for: ManifestUriFor,
) -> tuple[TableSnapshot, list[str]]:
    schema = unify([(o.uri, f.schema) for o, f in files])
    samples: dict[str, list[str]] = {}
    for _, footer in files:
        for column, values in footer.samples.items():
            samples.setdefault(column, []).extend(values)
    restores, column_notes = plan_restores(entry.columns, schema, samples)
    reader = reader_options(entry.target, restored_schema(schema, restores), restores)
    manifest_uri = manifest_uri_for(entry.database, entry.table, info.snapshot_time)
    manifest = write_manifest(
        manifest_uri,
        files_table(
            [o.uri for o, _ in files],
            [o.size for o, _ in files],
            [f.n_record for _, f in files],
            [o.etag for o, _ in files],
            **footer_columns([encode_schema(f.schema) for _, f in files], [f.uncompressed_size for _, f in files]),
        ),
        {
            **SnapshotDetails(reader=reader, source=root).to_dict(),
            "source_kind": KIND,
            "target": entry.target,
            "export_task": info.export_id,
            "source_arn": info.source_arn,
            "snapshot_time": info.snapshot_time,
        },
    )
    table_warnings = [entry.warning] if entry.warning else []
    if others:
        table_warnings.append(f"{len(others)} files that are not Parquet were ignored, e.g. {others[0]}")
    snapshot = TableSnapshot.of(manifest, entry.target, entry.database, entry.table, info.snapshot_time, table_warnings)
    return snapshot, column_notes


def reader_options(target: str, schema: pa.Schema, restores: Sequence[ColumnRestore]) -> SnapshotReader:
    """The manifest's ``reader``: how the ETL stage reads this table's files (see :func:`.restore.read_file`)."""
    return SnapshotReader(
        format=READER_FORMAT,
        schema=encode_schema(schema),
        table=target,
        columns=tuple(restores),
    )
