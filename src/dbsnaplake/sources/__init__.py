"""Snapshot sources: recognise what a folder or S3 prefix holds and write a snapshot manifest per table.

Each source module offers ``looks_like(source, listing) -> bool`` and
``build(source, listing, manifest_uri_for, progress) -> SourceBuildResult``. The source is listed once;
the modules are asked in order (an RDS/Aurora export, a DynamoDB export, then any folder of data files)
and the first that recognises the listing builds the manifests.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from dbsnaplake import storage
from dbsnaplake.errors import ConfigError, SnapshotError
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import CsvOptions
from dbsnaplake.sources import folder
from dbsnaplake.sources.base import ManifestUriFor, SourceBuildResult, TableSnapshot
from dbsnaplake.sources.dynamodb import export as dynamodb_export
from dbsnaplake.sources.dynamodb.export import DynamoDBOptions
from dbsnaplake.sources.folder import FolderOptions
from dbsnaplake.sources.rds import export as rds_export
from dbsnaplake.storage import ObjectInfo

SOURCES: tuple[tuple[ModuleType, str], ...] = (
    # (module, what it looks like): asked in this order
    (rds_export, "RDS/Aurora snapshot export: export_info_*.json beside <database>/<table>/ folders"),
    (dynamodb_export, "DynamoDB export: AWSDynamoDB/<export id>/manifest-summary.json"),
    (folder, "files: .parquet, .csv, .tsv, .ndjson, .jsonl, .json (text ones optionally .gz or .zst)"),
)
SHOWN_NAMES = 5


@dataclass(frozen=True)
class DetectedSource:
    """A source whose kind is known, with its one listing; :meth:`build` writes its manifests."""

    kind: str
    source: str
    listing: tuple[ObjectInfo, ...]
    module: ModuleType

    @property
    def single_table(self) -> bool:
        """A folder of files is one table; an export names its tables (``<database>/<table>``)."""
        return self.kind == folder.KIND

    def build(
        self,
        manifest_uri_for: ManifestUriFor,
        progress: Progress | None = None,
        folder_options: FolderOptions | None = None,
        dynamodb_options: DynamoDBOptions | None = None,
    ) -> SourceBuildResult:
        progress = progress or NoProgress()
        if self.kind == dynamodb_export.KIND:
            result: SourceBuildResult = dynamodb_export.build(
                self.source, list(self.listing), manifest_uri_for, progress, dynamodb_options
            )
            return result
        if self.kind == folder.KIND:
            return folder.build(self.source, list(self.listing), manifest_uri_for, progress, folder_options)
        if folder_options is not None and folder_options != FolderOptions():
            raise ConfigError(
                f"{self.source} is a {self.kind}: the CSV, table-name and text-count options apply to a folder of "
                "data files only — drop them"
            )
        built: SourceBuildResult = self.module.build(self.source, list(self.listing), manifest_uri_for, progress)
        return built


def detect_source(source: str) -> DetectedSource:
    """List ``source`` once and find which kind of snapshot it holds; none → :class:`SnapshotError`."""
    source = storage.as_dir(source)
    listing = storage.list_files(source)
    if not listing:
        raise SnapshotError(f"nothing found under {source}: check the path (and, for S3, the credentials' bucket)")
    for module, _ in SOURCES:
        if module.looks_like(source, listing):
            return DetectedSource(module.KIND, source, tuple(listing), module)
    shown = ", ".join(i.uri[len(source) :] for i in listing[:SHOWN_NAMES])
    more = f" and {len(listing) - SHOWN_NAMES:,} more" if len(listing) > SHOWN_NAMES else ""
    looked_for = "; ".join(f"{module.KIND} ({what})" for module, what in SOURCES)
    raise SnapshotError(
        f"{source} holds no snapshot dbsnaplake knows. Looked for: {looked_for}. Found: {shown}{more} — "
        "point SOURCE at the export's root folder, or at a folder of data files"
    )


def build_source_manifests(
    source: str,
    manifest_uri_for: ManifestUriFor,
    progress: Progress | None = None,
    folder_options: FolderOptions | None = None,
    dynamodb_options: DynamoDBOptions | None = None,
) -> SourceBuildResult:
    """Detect what ``source`` holds and write one snapshot manifest per table, at ``manifest_uri_for(...)``."""
    return detect_source(source).build(manifest_uri_for, progress, folder_options, dynamodb_options)


def write_source_manifests(
    source: str,
    out: str,
    progress: Progress | None = None,
    folder_options: FolderOptions | None = None,
    dynamodb_options: DynamoDBOptions | None = None,
) -> SourceBuildResult:
    """``dbsnaplake manifest build``: each table's manifest at ``<out>/<database>/<table>/manifest-summary.json``;
    a single-table source's at ``out`` itself when ``out`` names a summary JSON file."""
    detected = detect_source(source)
    if detected.single_table and out.endswith(".json"):
        summary = storage.normalize_uri(out)
        return detected.build(lambda *_: summary, progress, folder_options, dynamodb_options)
    folder_out = storage.as_dir(out)

    def manifest_uri_for(database: str, table: str, snapshot_time: str | None) -> str:
        return storage.join(folder_out, database, table, "manifest-summary.json")

    return detected.build(manifest_uri_for, progress, folder_options, dynamodb_options)


__all__ = [
    "SOURCES",
    "CsvOptions",
    "DetectedSource",
    "DynamoDBOptions",
    "FolderOptions",
    "ManifestUriFor",
    "SourceBuildResult",
    "TableSnapshot",
    "build_source_manifests",
    "detect_source",
    "write_source_manifests",
]
