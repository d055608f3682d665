"""``dbsnaplake manifest build``: write a snapshot manifest for a folder or prefix of data files."""

from __future__ import annotations

from dataclasses import dataclass

from . import storage
from .concurrency import map_io
from .errors import SnapshotError
from .manifest import Manifest, data_uri_for, files_table, write_manifest
from .progress import NoProgress, Progress
from .readers import PARQUET, count_records, detect_format, is_ignorable
from .units import format_size


@dataclass(frozen=True)
class ManifestBuildResult:
    manifest: Manifest
    n_read_for_counts: int
    """Text files whose records were counted by reading them (Parquet counts come from footers)."""

    def __str__(self) -> str:
        m = self.manifest
        how = f"; {self.n_read_for_counts} text files were read to count records" if self.n_read_for_counts else ""
        return (
            f"manifest {m.summary_uri}: {m.n_file:,} files, {format_size(m.size)}, {m.n_record:,} records "
            f"(Parquet counts from footers{how})"
        )


def build_manifest(source: str, out: str, progress: Progress | None = None) -> ManifestBuildResult:
    """List every data file below ``source``, count its records and write the manifest at ``out``."""
    progress = progress or NoProgress()
    source, out = storage.as_dir(source), storage.normalize_uri(out)
    own = {out, data_uri_for(out)}
    infos = [i for i in storage.list_files(source) if i.uri not in own and not is_ignorable(i.uri)]
    if not infos:
        raise SnapshotError(f"no data files under {source}: check the path (supported: Parquet, CSV, NDJSON)")
    kinds = [detect_format(i.uri).kind for i in infos]
    progress.start("count records", len(infos))
    counts = map_io(lambda i: count_records(i.uri, i.size), infos, progress)
    files = files_table([i.uri for i in infos], [i.size for i in infos], list(counts), [i.etag for i in infos])
    manifest = write_manifest(out, files, extra={"source": source})
    return ManifestBuildResult(manifest, sum(1 for k in kinds if k != PARQUET))
