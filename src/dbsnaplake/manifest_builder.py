"""``build_manifest``: the snapshot manifest of a folder or prefix of data files (see :mod:`.sources.folder`)."""

from __future__ import annotations

from dataclasses import dataclass

from . import storage
from .manifest import Manifest
from .progress import Progress
from .sources.folder import FolderOptions, build_folder_manifest
from .units import format_size


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
