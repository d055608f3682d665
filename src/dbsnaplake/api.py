"""The public API: every name a user imports. Everything not listed here is internal and may change.

>>> from dbsnaplake.api import S3Location, PipelineConfig, run_pipeline
>>> config = PipelineConfig(
...     location=S3Location(s3uri_staging="./staging/db/orders/snapshot=2024-01-01/", s3uri_datalake="./lake/db/orders/"),
...     snapshot_manifest="./snapshot/manifest-summary.json",
...     partition_by=("year",),
...     transform="SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year FROM snapshot",
... )
>>> result = run_pipeline(config)  # doctest: +SKIP

The stages are functions named as their commands: :func:`plan`, :func:`etl`, :func:`plan_compaction`,
:func:`compact`, :func:`validate`, :func:`publish`. Names of earlier releases stay importable (``plan_snapshot``,
``run_etl_group``, ``compact_group``, ``validate_datalake``, ``CompactionPlan``, ...).
"""

from dbsnaplake.config.file import SourceRunConfig, load_config, source_run_config
from dbsnaplake.config.settings import PipelineConfig, RunSettings, TableSettings
from dbsnaplake.errors import (
    ConfigError,
    DbSnapLakeError,
    RecordError,
    RunLockedError,
    SchemaConflictError,
    SnapshotError,
    StageError,
    TransformError,
    ValidationError,
)
from dbsnaplake.formats.ddl import table_ddl
from dbsnaplake.formats.glue import GlueRegistration, register_in_glue
from dbsnaplake.formats.hive import PublishedTable, default_table_name, published_table
from dbsnaplake.frames.partitioning import parse_partition_path, partition_path
from dbsnaplake.layout import S3Location
from dbsnaplake.ledger import Ledger, latest_root, read_published
from dbsnaplake.manifest import Manifest, read_manifest, write_manifest
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import (
    CompactResult,
    CsvOptions,
    EtlResult,
    PlanCompactionResult,
    PlanResult,
    PublishResult,
    SnapshotStats,
    SortKey,
    ValidateResult,
    parse_sort_keys,
)
from dbsnaplake.report import write_report
from dbsnaplake.run.executors import InlineExecutor, make_executor
from dbsnaplake.run.pipeline import STAGES, RunResult, config_from_plan, publish_snapshot, run_pipeline
from dbsnaplake.run.status import RunStatus, StageStatus, run_status
from dbsnaplake.run.tables import MultiTableResult, TableRun, run_source
from dbsnaplake.sources import (
    DetectedSource,
    FolderOptions,
    SourceBuildResult,
    TableSnapshot,
    build_source_manifests,
    detect_source,
    write_source_manifests,
)
from dbsnaplake.sources.folder import ManifestBuildResult, build_manifest
from dbsnaplake.stages.compact import compact
from dbsnaplake.stages.etl import etl
from dbsnaplake.stages.plan import plan
from dbsnaplake.stages.plan_compaction import plan_compaction
from dbsnaplake.stages.publish import Version, list_versions, publish, remove_old_versions
from dbsnaplake.stages.validate import validate
from dbsnaplake.storage import StorageError
from dbsnaplake.units import format_size, parse_size

# names of earlier releases
CompactGroupResult = CompactResult
CompactionPlan = PlanCompactionResult
EtlGroupResult = EtlResult
ValidationResult = ValidateResult
plan_snapshot = plan
validate_datalake = validate


def run_etl_group(config: PipelineConfig, group_manifest: str) -> EtlResult:
    """:func:`etl` under its earlier name and argument order."""
    return etl(group_manifest, config)


def compact_group(config: PipelineConfig, group_manifest: str) -> CompactResult:
    """:func:`compact` under its earlier name and argument order."""
    return compact(group_manifest, config)


__all__ = [
    "STAGES",
    "CompactResult",
    "ConfigError",
    "CsvOptions",
    "DbSnapLakeError",
    "DetectedSource",
    "EtlResult",
    "FolderOptions",
    "GlueRegistration",
    "InlineExecutor",
    "Ledger",
    "Manifest",
    "ManifestBuildResult",
    "MultiTableResult",
    "NoProgress",
    "PipelineConfig",
    "PlanCompactionResult",
    "PlanResult",
    "Progress",
    "PublishResult",
    "PublishedTable",
    "RecordError",
    "RunLockedError",
    "RunResult",
    "RunSettings",
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
    "StorageError",
    "TableRun",
    "TableSettings",
    "TableSnapshot",
    "TransformError",
    "ValidateResult",
    "ValidationError",
    "Version",
    "build_manifest",
    "build_source_manifests",
    "compact",
    "config_from_plan",
    "default_table_name",
    "detect_source",
    "etl",
    "format_size",
    "latest_root",
    "list_versions",
    "load_config",
    "make_executor",
    "parse_partition_path",
    "parse_size",
    "parse_sort_keys",
    "partition_path",
    "plan",
    "plan_compaction",
    "publish",
    "publish_snapshot",
    "published_table",
    "read_manifest",
    "read_published",
    "register_in_glue",
    "remove_old_versions",
    "run_pipeline",
    "run_source",
    "run_status",
    "source_run_config",
    "table_ddl",
    "validate",
    "write_manifest",
    "write_report",
    "write_source_manifests",
]
