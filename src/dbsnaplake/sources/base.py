"""What every snapshot source (an RDS/Aurora export, a DynamoDB export, a folder of files) produces: one
snapshot manifest per table, and a report of what was found."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dbsnaplake.manifest import Manifest
from dbsnaplake.units import format_size

ManifestUriFor = Callable[[str, str, "str | None"], str]
"""``(database, table, snapshot_time) -> URI of the manifest summary JSON to write for that table``."""


@dataclass(frozen=True)
class TableSnapshot:
    """One table of a source, with the snapshot manifest written for it."""

    name: str
    """What a ``[tables."<name>"]`` section of the TOML config matches: ``mydb.public.orders``, ``mydb.orders``."""
    database: str
    table: str
    """The name below the database: ``public.orders`` (PostgreSQL), ``orders`` (MySQL, DynamoDB, a folder)."""
    manifest_uri: str
    snapshot_time: str | None
    """ISO 8601 UTC time of the snapshot, when the source says it."""
    n_file: int
    size: int
    n_record: int | None
    warnings: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        manifest: Manifest,
        name: str,
        database: str,
        table: str,
        snapshot_time: str | None,
        warnings: Sequence[str] = (),
    ) -> TableSnapshot:
        """The table whose snapshot manifest was just written: counts taken from it."""
        return cls(
            name=name,
            database=database,
            table=table,
            manifest_uri=manifest.summary_uri,
            snapshot_time=snapshot_time,
            n_file=manifest.n_file,
            size=manifest.size,
            n_record=manifest.n_record,
            warnings=tuple(warnings),
        )


@dataclass(frozen=True)
class SourceBuildResult:
    kind: str
    """``rds-export``, ``dynamodb-export`` or ``folder``."""
    source: str
    tables: tuple[TableSnapshot, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)
    """How counts were obtained (footers, reading text files), what was skipped, ..."""

    def __str__(self) -> str:
        lines = [f"{self.kind} at {self.source}: {len(self.tables)} table(s)"]
        for t in self.tables:
            records = f"{t.n_record:,}" if t.n_record is not None else "unknown"
            lines.append(f"  {t.name}: {t.n_file:,} files, {format_size(t.size)}, {records} records → {t.manifest_uri}")
            lines.extend(f"    warning: {w}" for w in t.warnings)
        lines.extend(f"warning: {w}" for w in self.warnings)
        lines.extend(self.notes)
        return "\n".join(lines)
