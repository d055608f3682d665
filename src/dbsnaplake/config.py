"""The pipeline's settings, in one frozen object that travels to every worker."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import storage
from .errors import ConfigError, TransformError
from .location import S3Location
from .readers import ON_BAD_VALUE
from .sorting import SortKey

MiB = 1024**2
DEFAULT_TARGET_FILE_SIZE = 128 * MiB
INSPECT_MODES = ("auto", "all", "sample", "none")
PUBLISH_MODES = ("historical", "latest")
DEFAULT_RETRIES = 2


def default_workers() -> int:
    return os.cpu_count() or 1


def total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 1024**3


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a stage needs to know. Plain data, so it pickles to worker processes and other machines."""

    location: S3Location
    """Staging root (state, manifests, staging lake) and final data-lake root."""
    snapshot_manifest: str | None = None
    """URI of the snapshot manifest summary JSON (default: ``<staging>/manifests/manifest-summary.json``)."""
    partition_by: tuple[str, ...] = ()
    """Hive partition columns, outermost first; they must exist after the transform. Empty: unpartitioned."""
    sort_by: tuple[SortKey, ...] = ()
    """Order of rows inside every output file."""
    transform: str | None = None
    """Polars SQL over the table ``snapshot`` or ``module:function``; ``None`` keeps rows as they are."""
    group_size: int | None = None
    """Most snapshot bytes per ETL group; ``None`` derives it from the snapshot and ``worker_memory``."""
    target_file_size: int = DEFAULT_TARGET_FILE_SIZE
    """Size of the data lake's Parquet files, measured as bytes written."""
    workers: int = field(default_factory=default_workers)
    """Worker processes for the ETL and compaction stages."""
    worker_memory: int | None = None
    """Memory budget of one worker in bytes; ``None``: 60 % of this machine's memory shared by the workers."""
    compression: str = "zstd"
    """Parquet compression codec of staging and data-lake files."""
    inspect_files: str = "auto"
    """Which snapshot files planning checks: ``all``, an even ``sample`` of 1,000, ``none`` (trust the manifest),
    or ``auto`` (all up to 10,000 files, else a sample)."""
    on_bad_value: str = "error"
    """A value that does not parse as its source type (an export's string-encoded date, ...): ``error`` stops
    naming table, column, file and value; ``null`` stores null and counts it in the report."""
    publish: str = "historical"
    """``historical``: the data lake folder is this snapshot's own (``mytable_2021_01_01_08_30_00/``), committed by
    a ``_SUCCESS`` file written last. ``latest``: the folder is a static path; each snapshot is written to
    ``version=<time>/`` inside it and ``_latest.json`` is switched to it last. See :mod:`dbsnaplake.publish`."""
    snapshot_time: str | None = None
    """When the snapshot was taken (ISO 8601); names the version. Default: the staging path's ``snapshot=...``
    segment, else the time of planning."""
    retries: int = DEFAULT_RETRIES
    """How many times a failed group is retried (with exponential backoff) before the run stops."""

    def __post_init__(self) -> None:
        staging, lake = self.location.s3dir_staging, self.location.s3dir_datalake
        if storage.is_within(staging, lake) or storage.is_within(lake, staging):
            raise ConfigError(
                f"--staging {staging} and --datalake {lake} must not contain each other: use two separate folders"
            )
        if self.inspect_files not in INSPECT_MODES:
            raise ConfigError(f"--inspect-files must be one of {', '.join(INSPECT_MODES)}, got {self.inspect_files!r}")
        if self.on_bad_value not in ON_BAD_VALUE:
            raise ConfigError(f"--on-bad-value must be one of {', '.join(ON_BAD_VALUE)}, got {self.on_bad_value!r}")
        if self.publish not in PUBLISH_MODES:
            raise ConfigError(f"--publish must be one of {', '.join(PUBLISH_MODES)}, got {self.publish!r}")
        if self.retries < 0:
            raise ConfigError(f"--retries must be 0 or more, got {self.retries}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if len(set(self.partition_by)) != len(self.partition_by):
            raise ConfigError(f"--partition-by names a column twice: {','.join(self.partition_by)}")
        if self.snapshot_manifest is None:
            object.__setattr__(self, "snapshot_manifest", self.location.s3path_snapshot_manifest_summary)
        else:
            object.__setattr__(self, "snapshot_manifest", storage.normalize_uri(self.snapshot_manifest))

    def require_output_columns(self, columns: list[str]) -> None:
        """The partition and sort columns must be among ``columns`` (what the transform, or the snapshot, gives)."""
        needed = [("--partition-by", c) for c in self.partition_by] + [("--sort-by", k.column) for k in self.sort_by]
        for option, column in needed:
            if column not in columns:
                source = "the transform" if self.transform else "the snapshot"
                raise TransformError(
                    f"{option} column {column!r} is not produced by {source}; its columns are: {', '.join(columns)}"
                )

    @property
    def manifest_uri(self) -> str:
        assert self.snapshot_manifest is not None
        return self.snapshot_manifest

    @property
    def memory_per_worker(self) -> int:
        if self.worker_memory is not None:
            return self.worker_memory
        return int(total_memory() * 0.6 / self.workers)
