"""dbsnaplake: turn a database snapshot export into a compacted, validated, hive-partitioned Parquet data lake.

Quick start (a snapshot manifest in, a data lake out)::

    from dbsnaplake import PipelineConfig, S3Location, make_executor, run_pipeline
    config = PipelineConfig(location=S3Location("./staging/db/t/snapshot=2024-01-01/", "./lake/db/t/"), snapshot_manifest="./manifest-summary.json")
    with make_executor("process", workers=4) as pool: print(run_pipeline(config, pool))

These are the names most users need; :mod:`dbsnaplake.api` has the rest (each stage, the records it returns, the
sources). They load on first use, so ``import dbsnaplake`` (and ``dbsnaplake --help``) stays quick; for type checking,
import them from :mod:`dbsnaplake.api`.
"""

from __future__ import annotations

import importlib
from typing import Any

from dbsnaplake.version import __version__ as __version__

_HOMES = {
    "DbSnapLakeError": "dbsnaplake.errors",
    "PipelineConfig": "dbsnaplake.config.settings",
    "RunResult": "dbsnaplake.run.pipeline",
    "S3Location": "dbsnaplake.layout",
    "SortKey": "dbsnaplake.records",
    "build_manifest": "dbsnaplake.sources.folder",
    "load_config": "dbsnaplake.config.file",
    "make_executor": "dbsnaplake.run.executors",
    "run_pipeline": "dbsnaplake.run.pipeline",
    "run_source": "dbsnaplake.run.tables",
    "run_status": "dbsnaplake.run.status",
    "source_run_config": "dbsnaplake.config.file",
}
"""Where each name lives: it is imported from there on first use (Arrow and Polars load with the pipeline)."""

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'dbsnaplake' has no attribute {name!r}")
