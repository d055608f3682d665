"""dbsnaplake: turn a database snapshot export into a compacted, validated, hive-partitioned Parquet data lake.

Quick start (a snapshot manifest in, a data lake out)::

    from dbsnaplake import PipelineConfig, S3Location, make_executor, run_pipeline
    config = PipelineConfig(location=S3Location("./staging/db/t/snapshot=2024-01-01/", "./lake/db/t/"), snapshot_manifest="./manifest-summary.json")
    with make_executor("process", workers=4) as pool: print(run_pipeline(config, pool))

These are the names most users need; :mod:`dbsnaplake.api` has the rest (each stage, the records it returns, the
sources). They load on first use, so ``import dbsnaplake`` (and ``dbsnaplake --help``) stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dbsnaplake.api import (
        DbSnapLakeError,
        PipelineConfig,
        RunResult,
        S3Location,
        SortKey,
        build_manifest,
        load_config,
        make_executor,
        run_pipeline,
        run_source,
        run_status,
        source_run_config,
    )

__all__ = [
    "DbSnapLakeError",
    "PipelineConfig",
    "RunResult",
    "S3Location",
    "SortKey",
    "build_manifest",
    "load_config",
    "make_executor",
    "run_pipeline",
    "run_source",
    "run_status",
    "source_run_config",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("dbsnaplake.api"), name)
    raise AttributeError(f"module 'dbsnaplake' has no attribute {name!r}")
