"""The stages in order, run over an executor: plan → ETL → plan compaction → compact → validate."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass
from typing import TypeVar

from .compaction_planner import CompactionPlan, plan_compaction
from .compactor import CompactGroupResult, compact_group
from .config import PipelineConfig
from .errors import DbSnapLakeError
from .etl import EtlGroupResult, run_etl_group
from .executors import InlineExecutor
from .planner import PlanResult, plan_snapshot
from .progress import NoProgress, Progress
from .units import format_size
from .validator import ValidationResult, validate_datalake

STAGES = ("plan", "etl", "plan-compaction", "compact", "validate")
R = TypeVar("R")


def run_groups(
    executor: Executor,
    worker: Callable[[PipelineConfig, str], R],
    config: PipelineConfig,
    group_manifests: Sequence[str],
    progress: Progress,
    task: str,
) -> list[R]:
    """Run ``worker`` once per group manifest; on the first failure cancel the rest and raise it, naming the group."""
    progress.start(task, len(group_manifests))
    futures: dict[Future[R], str] = {executor.submit(worker, config, uri): uri for uri in group_manifests}
    results: list[R] = []
    try:
        for future in as_completed(futures):
            try:
                results.append(future.result())
            except DbSnapLakeError as exc:
                raise type(exc)(f"{exc} [group manifest: {futures[future]}]") from exc
            progress.advance()
    finally:
        for future in futures:
            future.cancel()
    return results


@dataclass(frozen=True)
class RunResult:
    plan: PlanResult
    etl: tuple[EtlGroupResult, ...]
    compaction_plan: CompactionPlan
    compaction: tuple[CompactGroupResult, ...]
    validation: ValidationResult
    seconds: dict[str, float]

    def __str__(self) -> str:
        v, p = self.validation, self.plan.stats
        timing = ", ".join(f"{stage} {self.seconds[stage]:.1f}s" for stage in STAGES)
        lake_files = v.datalake.files
        return "\n".join(
            [
                f"snapshot  : {p.n_file:,} files, {format_size(p.size)}, {v.etl_records_in:,} records",
                f"data lake : {lake_files:,} files, {format_size(v.datalake.bytes)}, {v.datalake.records:,} records "
                f"in {len(v.partitions):,} partitions",
                _file_size_line(v),
                *(
                    [f"bad values: {v.bad_values:,} values did not parse and were stored as null"]
                    if v.bad_values
                    else []
                ),
                f"validation: {'OK' if v.ok else 'FAILED'}",
                f"seconds   : {timing} (total {sum(self.seconds.values()):.1f}s)",
            ]
        )


def _file_size_line(v: ValidationResult) -> str:
    target = format_size(v.target_file_size)
    if not v.files_judged:
        return f"file size : every partition fits in one file (target {target})"
    return (
        f"file size : {v.files_near_target:.0%} of {v.files_judged} files within ±10% of {target} "
        "(each partition's last, smaller file excepted)"
    )


def run_pipeline(
    config: PipelineConfig, executor: Executor | None = None, progress: Progress | None = None
) -> RunResult:
    """Run all five stages. ``executor`` defaults to inline; the CLI passes a process pool."""
    executor = executor or InlineExecutor()
    progress = progress or NoProgress()
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    plan = plan_snapshot(config, progress)
    seconds["plan"] = time.perf_counter() - start

    start = time.perf_counter()
    etl = run_groups(executor, run_etl_group, config, plan.group_manifests, progress, "ETL to staging")
    seconds["etl"] = time.perf_counter() - start

    start = time.perf_counter()
    compaction_plan = plan_compaction(config, progress)
    seconds["plan-compaction"] = time.perf_counter() - start

    start = time.perf_counter()
    compaction = run_groups(executor, compact_group, config, compaction_plan.group_manifests, progress, "compact")
    seconds["compact"] = time.perf_counter() - start

    start = time.perf_counter()
    validation = validate_datalake(config, progress)
    seconds["validate"] = time.perf_counter() - start

    return RunResult(
        plan=plan,
        etl=tuple(sorted(etl, key=lambda r: r.group)),
        compaction_plan=compaction_plan,
        compaction=tuple(sorted(compaction, key=lambda r: r.group)),
        validation=validation,
        seconds=seconds,
    )
