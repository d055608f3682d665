"""The public API. Everything not listed here is internal and may change.

>>> from dbsnaplake.api import S3Location, PipelineConfig, run_pipeline
>>> config = PipelineConfig(
...     location=S3Location(s3uri_staging="./staging/db/orders/snapshot=2024-01-01/", s3uri_datalake="./lake/db/orders/"),
...     snapshot_manifest="./snapshot/manifest-summary.json",
...     partition_by=("year",),
...     transform="SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year FROM snapshot",
... )
>>> result = run_pipeline(config)  # doctest: +SKIP
"""

from .compaction_planner import CompactionPlan, plan_compaction
from .compactor import CompactGroupResult, compact_group
from .config import PipelineConfig
from .errors import (
    ConfigError,
    DbSnapLakeError,
    RunLockedError,
    SchemaConflictError,
    SnapshotError,
    StageError,
    TransformError,
    ValidationError,
)
from .etl import EtlGroupResult, run_etl_group
from .executors import InlineExecutor, make_executor
from .location import S3Location
from .manifest import Manifest, read_manifest, write_manifest
from .manifest_builder import ManifestBuildResult, build_manifest
from .multi_table import MultiTableResult, TableRun, run_source
from .partitioning import parse_partition_path, partition_path
from .pipeline import STAGES, RunResult, publish_snapshot, run_pipeline
from .planner import PlanResult, SnapshotStats, plan_snapshot
from .progress import NoProgress, Progress
from .publish import PublishResult, Version, latest_root, list_versions, remove_old_versions
from .sorting import SortKey, parse_sort_keys
from .sources import (
    CsvOptions,
    DetectedSource,
    FolderOptions,
    SourceBuildResult,
    TableSnapshot,
    build_source_manifests,
    detect_source,
    write_source_manifests,
)
from .status import RunStatus, StageStatus, run_status
from .table_config import SourceRunConfig, TableSettings, load_config, source_run_config
from .units import format_size, parse_size
from .validator import ValidationResult, validate_datalake

__all__ = [
    "STAGES",
    "CompactGroupResult",
    "CompactionPlan",
    "ConfigError",
    "CsvOptions",
    "DbSnapLakeError",
    "DetectedSource",
    "EtlGroupResult",
    "FolderOptions",
    "InlineExecutor",
    "Manifest",
    "ManifestBuildResult",
    "MultiTableResult",
    "NoProgress",
    "PipelineConfig",
    "PlanResult",
    "Progress",
    "PublishResult",
    "RunLockedError",
    "RunResult",
    "RunStatus",
    "S3Location",
    "SchemaConflictError",
    "SnapshotError",
    "SnapshotStats",
    "SortKey",
    "SourceBuildResult",
    "SourceRunConfig",
    "StageError",
    "StageStatus",
    "TableRun",
    "TableSettings",
    "TableSnapshot",
    "TransformError",
    "ValidationError",
    "ValidationResult",
    "Version",
    "build_manifest",
    "build_source_manifests",
    "compact_group",
    "detect_source",
    "format_size",
    "latest_root",
    "list_versions",
    "load_config",
    "make_executor",
    "parse_partition_path",
    "parse_size",
    "parse_sort_keys",
    "partition_path",
    "plan_compaction",
    "plan_snapshot",
    "publish_snapshot",
    "read_manifest",
    "remove_old_versions",
    "run_etl_group",
    "run_pipeline",
    "run_source",
    "run_status",
    "source_run_config",
    "validate_datalake",
    "write_manifest",
    "write_source_manifests",
]
