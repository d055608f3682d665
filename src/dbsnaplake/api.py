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
from .partitioning import parse_partition_path, partition_path
from .pipeline import STAGES, RunResult, run_pipeline
from .planner import PlanResult, SnapshotStats, plan_snapshot
from .progress import NoProgress, Progress
from .sorting import SortKey, parse_sort_keys
from .units import format_size, parse_size
from .validator import ValidationResult, validate_datalake

__all__ = [
    "STAGES",
    "CompactGroupResult",
    "CompactionPlan",
    "ConfigError",
    "DbSnapLakeError",
    "EtlGroupResult",
    "InlineExecutor",
    "Manifest",
    "ManifestBuildResult",
    "NoProgress",
    "PipelineConfig",
    "PlanResult",
    "Progress",
    "RunResult",
    "S3Location",
    "SchemaConflictError",
    "SnapshotError",
    "SnapshotStats",
    "SortKey",
    "StageError",
    "TransformError",
    "ValidationError",
    "ValidationResult",
    "build_manifest",
    "compact_group",
    "format_size",
    "make_executor",
    "parse_partition_path",
    "parse_size",
    "parse_sort_keys",
    "partition_path",
    "plan_compaction",
    "plan_snapshot",
    "read_manifest",
    "run_etl_group",
    "run_pipeline",
    "validate_datalake",
    "write_manifest",
]
