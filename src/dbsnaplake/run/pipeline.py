"""The stages in order, run over an executor: plan → ETL → plan compaction → compact → validate → publish.

A run resumes what an earlier run in the same staging area left: a plan made for the same snapshot manifest
and settings is reused, groups with a done-marker are skipped (the output says how many), and what is left
is run. Whatever died before (the orchestrator, a worker, the machine), rerunning the same command finishes
the job, and the data lake holds every row exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from dbsnaplake import storage
from dbsnaplake.config.settings import PipelineConfig
from dbsnaplake.errors import ValidationError
from dbsnaplake.ledger import COMPACT, ETL, Ledger, compaction_fingerprint, plan_fingerprint
from dbsnaplake.manifest import read_manifest
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import (
    CompactResult,
    EtlResult,
    PlanCompactionResult,
    PlanResult,
    PublishResult,
    RunTimes,
    ValidateResult,
)
from dbsnaplake.roots import check_before_writing
from dbsnaplake.run.executors import InlineExecutor, ProcessPool
from dbsnaplake.run.groups import Work, run_groups
from dbsnaplake.run.lock import run_lock
from dbsnaplake.run.read_back import ReadBackOver
from dbsnaplake.stages.compact import compact
from dbsnaplake.stages.etl import etl
from dbsnaplake.stages.plan import plan
from dbsnaplake.stages.plan_compaction import plan_compaction
from dbsnaplake.stages.publish import publish
from dbsnaplake.stages.validate import validate
from dbsnaplake.units import format_size

log = logging.getLogger(__name__)

STAGES = ("plan", "etl", "plan-compaction", "compact", "validate", "publish")
@dataclass(frozen=True)
class RunResult:
    plan: PlanResult
    etl: tuple[EtlResult, ...]
    """The ETL groups this run processed (groups done by an earlier run are in ``skipped``)."""
    compaction_plan: PlanCompactionResult
    compaction: tuple[CompactResult, ...]
    validation: ValidateResult
    published: PublishResult | None
    """``None`` when an earlier run had already published this snapshot."""
    seconds: dict[str, float]
    skipped: dict[str, int] = field(default_factory=dict)
    """Per stage, what an earlier run had finished: groups (etl, compact) or 1 (plan, plan-compaction)."""

    def to_dict(self) -> dict[str, Any]:
        """What ``--output json`` prints for one table (see README, "Machine-readable output")."""
        return {
            "ok": self.validation.ok,
            "datalake": self.plan.version_root,
            "version": self.plan.version,
            "snapshot": self.plan.stats.to_dict(),
            "group_size": self.plan.group_size.to_dict(),
            "groups": {"etl": len(self.plan.group_manifests), "compact": len(self.compaction_plan.group_manifests)},
            "compacted": self.compacted(),
            "skipped": dict(self.skipped),
            "validation": self.validation.to_dict(),
            "published": self.published.to_dict() if self.published else None,
            "seconds": dict(self.seconds),
        }

    def compacted(self) -> dict[str, int]:
        """How compaction made the data-lake files: joined from staging row groups, copied whole, encoded anew."""
        joined = sum(r.n_joined for r in self.compaction)
        copied = sum(r.n_copied for r in self.compaction)
        written = sum(len(r.files) for r in self.compaction)
        return {"joined": joined, "copied": copied, "encoded": written - joined - copied}

    def __str__(self) -> str:
        v, p = self.validation, self.plan.stats
        timing = ", ".join(f"{stage} {self.seconds[stage]:.1f}s" for stage in STAGES if stage in self.seconds)
        lines = [
            f"snapshot  : {p.n_file:,} files, {format_size(p.size)}, {v.etl_records_in:,} records",
            f"data lake : {v.datalake.files:,} files, {format_size(v.datalake.bytes)}, {v.datalake.records:,} "
            f"records in {len(v.partitions):,} partitions",
            _file_size_line(v),
            f"validation: {'OK' if v.ok else 'FAILED'}",
        ]
        if v.bad_values:
            lines.append(f"bad values: {v.bad_values:,} values did not parse and were stored as null")
        if any(self.skipped.values()):
            lines.append(f"resumed   : {_skipped_line(self)}")
        lines.append(f"published : {self.published or 'already published by an earlier run'}")
        lines.append(f"seconds   : {timing} (total {sum(self.seconds.values()):.1f}s)")
        return "\n".join(lines)


def _skipped_line(result: RunResult) -> str:
    parts = []
    if result.skipped.get("plan"):
        parts.append("plan reused")
    for stage, total in (
        ("etl", len(result.plan.group_manifests)),
        ("compact", len(result.compaction_plan.group_manifests)),
    ):
        if result.skipped.get(stage):
            parts.append(f"{stage} {result.skipped[stage]} of {total} groups done earlier, skipped")
    if result.skipped.get("plan-compaction"):
        parts.append("compaction plan reused")
    return "; ".join(parts)


def _file_size_line(v: ValidateResult) -> str:
    target = format_size(v.target_file_size)
    if not v.files_judged:
        return f"file size : every partition fits in one file (target {target})"
    return (
        f"file size : {v.files_near_target:.0%} of {v.files_judged} files within ±10% of {target} "
        "(each partition's last, smaller file excepted)"
    )


def ensure_plan(config: PipelineConfig, progress: Progress, fresh: bool = False) -> tuple[PlanResult, bool]:
    """The plan an earlier run made for the same snapshot manifest and settings, or a new one.
    Returns ``(plan, reused)``."""
    existing = None if fresh else Ledger(config.location).read_plan()
    if existing is None:
        return plan(config, progress), False
    manifest = read_manifest(config.manifest_uri)
    if existing.fingerprint == plan_fingerprint(config.result_settings(), manifest.digest):
        return existing, True
    progress.note("the staging area holds a plan for another snapshot manifest or other settings: planning again")
    return plan(config, progress, manifest), False


def compacted_groups(ledger: Ledger, version_root: str, progress: Progress) -> dict[int, CompactResult]:
    """Compaction groups with a done-marker whose files are all still in the data lake, with their results. A group
    whose files were removed since (someone cleared the data-lake folder) is redone rather than trusted."""
    results: dict[int, CompactResult] = ledger.read_done(COMPACT)
    if not results:
        return {}
    present = {info.uri for info in storage.list_files(version_root)}
    done = {group: r for group, r in results.items() if all(f.uri in present for f in r.files)}
    if len(done) < len(results):
        progress.note(f"compact: {len(results) - len(done)} finished groups lost data-lake files since: redoing them")
    return done


def config_from_plan(staging: str, given: Mapping[str, Any]) -> PipelineConfig:
    """The settings a staging area was planned with, and the options a stage command was given on top: the roots
    and every setting that changes the result must agree with the plan (see :meth:`PipelineConfig.with_given`)."""
    plan = Ledger.of_staging(staging).require_plan()
    return PipelineConfig.from_dict(plan.settings, staging).with_given(given, staging)


def run_pipeline(
    config: PipelineConfig,
    executor: Executor | None = None,
    progress: Progress | None = None,
    fresh: bool = False,
    *,
    lock: bool = True,
) -> RunResult:
    """Run (or resume) every stage. ``executor`` defaults to inline; the CLI passes a process pool.
    ``fresh`` discards what earlier runs did in this staging area and starts over. The roots are checked before
    anything is written; ``lock=False`` when the caller holds the staging area's lock already (``run --source``
    takes it before writing the manifest)."""
    check_before_writing(config.location, config.manifest_uri)
    if not lock:
        return _run(config, executor or InlineExecutor(), progress or NoProgress(), fresh)
    with run_lock(config.location):
        return _run(config, executor or InlineExecutor(), progress or NoProgress(), fresh)


def _run(config: PipelineConfig, executor: Executor, progress: Progress, fresh: bool) -> RunResult:
    ledger = Ledger(config.location)
    started_at = time.time()
    seconds: dict[str, float] = {}
    skipped: dict[str, int] = {}

    if isinstance(executor, ProcessPool):
        executor.warm_up()
    start = time.perf_counter()
    planned, reused = ensure_plan(config, progress, fresh)
    skipped["plan"] = int(reused)
    seconds["plan"] = time.perf_counter() - start

    start = time.perf_counter()
    etl_todo = ledger.pending(planned.group_manifests, ledger.done_groups(ETL))
    skipped["etl"] = len(planned.group_manifests) - len(etl_todo)
    etl_work = Work(planned.stats.size, skipped["etl"])
    if skipped["etl"]:
        progress.note(f"ETL: {skipped['etl']} of {len(planned.group_manifests)} groups were done by an earlier run")
        done_bytes = sum(r.size_in for r in ledger.read_done(ETL).values()) if etl_todo else planned.stats.size
        etl_work = Work(planned.stats.size, skipped["etl"], done_bytes)
    etl_results = run_groups(executor, etl, config, etl_todo, progress, "ETL to staging", ETL, etl_work)
    seconds["etl"] = time.perf_counter() - start

    start = time.perf_counter()
    compaction_plan = ledger.read_compaction_plan()
    expected = compaction_fingerprint(planned.fingerprint, config.target_file_size)
    if etl_todo or compaction_plan is None or compaction_plan.fingerprint != expected:
        compaction_plan = plan_compaction(config, progress)
    else:
        skipped["plan-compaction"] = 1
    seconds["plan-compaction"] = time.perf_counter() - start

    start = time.perf_counter()
    groups = compaction_plan.group_manifests
    compacted = compacted_groups(ledger, planned.version_root, progress)
    compact_todo = ledger.pending(groups, set(compacted))
    skipped["compact"] = len(groups) - len(compact_todo)
    if skipped["compact"]:
        progress.note(f"compact: {skipped['compact']} of {len(groups)} groups were done by an earlier run")
    compact_work = Work(compaction_plan.staging_size, skipped["compact"], sum(r.size_in for r in compacted.values()))
    read_back = ReadBackOver(executor, config.workers, config.retries)  # starts as each lake file is written
    compaction = run_groups(
        executor, compact, config, compact_todo, progress, "compact", COMPACT, compact_work, read_back
    )
    seconds["compact"] = time.perf_counter() - start

    start = time.perf_counter()
    try:
        validation = validate(config, progress, read_back)
    except ValidationError:  # the run report shows where the data lake and the snapshot disagree
        seconds["validate"] = time.perf_counter() - start
        _record_run_times(ledger, config, started_at, seconds, skipped)
        raise
    seconds["validate"] = time.perf_counter() - start

    start = time.perf_counter()
    published = publish(config)
    if published is not None:
        progress.note(str(published))
    if config.clean_staging:
        files, size = ledger.clean_staging_lake()
        progress.note(f"staging lake removed ({files:,} files, {format_size(size)}): --clean-staging")
    seconds["publish"] = time.perf_counter() - start
    _record_run_times(ledger, config, started_at, seconds, skipped)

    log.debug(
        "run of %s done: %s", config.location.s3dir_staging, ", ".join(f"{k} {v:.2f}s" for k, v in seconds.items())
    )
    return RunResult(
        plan=planned,
        etl=tuple(sorted(etl_results, key=lambda r: r.group)),
        compaction_plan=compaction_plan,
        compaction=tuple(sorted(compaction, key=lambda r: r.group)),
        validation=validation,
        published=published,
        seconds=seconds,
        skipped=skipped,
    )


def _record_run_times(
    ledger: Ledger, config: PipelineConfig, started_at: float, seconds: dict[str, float], skipped: dict[str, int]
) -> None:
    """Store how this run went, stage by stage (``state/run.json``), for the run report."""
    times = RunTimes(
        started_at=started_at,
        finished_at=time.time(),
        seconds=dict(seconds),
        skipped=dict(skipped),
        workers=config.workers,
        executor=config.executor,
    )
    ledger.write_run_times(times)


def publish_snapshot(config: PipelineConfig, progress: Progress | None = None) -> PublishResult | None:
    """Validate the compacted version, then publish it: the last step when an external orchestrator (Step
    Functions, a Dask driver) runs the stages one by one."""
    with run_lock(config.location):
        validate(config, progress)  # raises ValidationError: nothing is published
        return publish(config)
