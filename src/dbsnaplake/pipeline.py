"""The stages in order, run over an executor: plan → ETL → plan compaction → compact → validate → publish.

A run resumes what an earlier run in the same staging area left: a plan made for the same snapshot manifest
and settings is reused, groups with a done-marker are skipped (the output says how many), and what is left
is run. Whatever died before (the orchestrator, a worker, the machine), rerunning the same command finishes
the job, and the data lake holds every row exactly once.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

from . import storage
from .compaction_planner import CompactionPlan, plan_compaction, read_compaction_plan, require_plan
from .compactor import CompactGroupResult, compact_group
from .config import PipelineConfig
from .etl import EtlGroupResult, run_etl_group
from .executors import InlineExecutor
from .group_runner import run_groups
from .manifest import read_manifest
from .planner import PlanResult, plan_snapshot, read_plan
from .progress import NoProgress, Progress
from .publish import PublishResult, publish, read_commit
from .run_lock import run_lock
from .state import COMPACT, ETL, compaction_fingerprint, done_groups, group_of, read_markers, settings_fingerprint
from .units import format_size
from .validator import ValidationResult, validate_datalake

STAGES = ("plan", "etl", "plan-compaction", "compact", "validate", "publish")


@dataclass(frozen=True)
class RunResult:
    plan: PlanResult
    etl: tuple[EtlGroupResult, ...]
    """The ETL groups this run processed (groups done by an earlier run are in ``skipped``)."""
    compaction_plan: CompactionPlan
    compaction: tuple[CompactGroupResult, ...]
    validation: ValidationResult
    published: PublishResult | None
    """``None`` when an earlier run had already published this snapshot."""
    seconds: dict[str, float]
    skipped: dict[str, int] = field(default_factory=dict)
    """Per stage, what an earlier run had finished: groups (etl, compact) or 1 (plan, plan-compaction)."""

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


def _file_size_line(v: ValidationResult) -> str:
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
    existing = None if fresh else read_plan(config.location)
    if existing is None:
        return plan_snapshot(config, progress), False
    manifest = read_manifest(config.manifest_uri)
    if existing.fingerprint == settings_fingerprint(config, manifest.digest):
        return existing, True
    progress.note("the staging area holds a plan for another snapshot manifest or other settings: planning again")
    return plan_snapshot(config, progress, manifest), False


def compacted_groups(config: PipelineConfig, version_root: str, progress: Progress) -> set[int]:
    """Compaction groups with a done-marker whose files are all still in the data lake. A group whose files
    were removed since (someone cleared the data-lake folder) is redone rather than trusted."""
    markers = read_markers(config.location, COMPACT, "done")
    if not markers:
        return set()
    present = {info.uri for info in storage.list_files(version_root)}
    done = {group for group, m in markers.items() if all(f["uri"] in present for f in m["files"])}
    if len(done) < len(markers):
        progress.note(f"compact: {len(markers) - len(done)} finished groups lost data-lake files since: redoing them")
    return done


def pending_groups(group_manifests: tuple[str, ...], done: set[int]) -> list[str]:
    return [uri for uri in group_manifests if group_of(uri) not in done]


def run_pipeline(
    config: PipelineConfig, executor: Executor | None = None, progress: Progress | None = None, fresh: bool = False
) -> RunResult:
    """Run (or resume) every stage. ``executor`` defaults to inline; the CLI passes a process pool.
    ``fresh`` discards what earlier runs did in this staging area and starts over."""
    with run_lock(config.location):
        return _run(config, executor or InlineExecutor(), progress or NoProgress(), fresh)


def _run(config: PipelineConfig, executor: Executor, progress: Progress, fresh: bool) -> RunResult:
    location = config.location
    seconds: dict[str, float] = {}
    skipped: dict[str, int] = {}

    start = time.perf_counter()
    plan, reused = ensure_plan(config, progress, fresh)
    skipped["plan"] = int(reused)
    seconds["plan"] = time.perf_counter() - start

    start = time.perf_counter()
    etl_todo = pending_groups(plan.group_manifests, done_groups(location, ETL))
    skipped["etl"] = len(plan.group_manifests) - len(etl_todo)
    if skipped["etl"]:
        progress.note(f"ETL: {skipped['etl']} of {len(plan.group_manifests)} groups were done by an earlier run")
    etl = run_groups(executor, run_etl_group, config, etl_todo, progress, "ETL to staging", ETL)
    seconds["etl"] = time.perf_counter() - start

    start = time.perf_counter()
    compaction_plan = read_compaction_plan(config.location)
    expected = compaction_fingerprint(config, plan.fingerprint)
    if etl_todo or compaction_plan is None or compaction_plan.fingerprint != expected:
        compaction_plan = plan_compaction(config, progress)
    else:
        skipped["plan-compaction"] = 1
    seconds["plan-compaction"] = time.perf_counter() - start

    start = time.perf_counter()
    groups = compaction_plan.group_manifests
    compact_todo = pending_groups(groups, compacted_groups(config, plan.version_root, progress))
    skipped["compact"] = len(groups) - len(compact_todo)
    if skipped["compact"]:
        progress.note(f"compact: {skipped['compact']} of {len(groups)} groups were done by an earlier run")
    compaction = run_groups(executor, compact_group, config, compact_todo, progress, "compact", COMPACT)
    seconds["compact"] = time.perf_counter() - start

    start = time.perf_counter()
    validation = validate_datalake(config, progress)
    seconds["validate"] = time.perf_counter() - start

    start = time.perf_counter()
    published = publish_if_needed(config, plan)
    if published is not None:
        progress.note(str(published))
    seconds["publish"] = time.perf_counter() - start

    return RunResult(
        plan=plan,
        etl=tuple(sorted(etl, key=lambda r: r.group)),
        compaction_plan=compaction_plan,
        compaction=tuple(sorted(compaction, key=lambda r: r.group)),
        validation=validation,
        published=published,
        seconds=seconds,
        skipped=skipped,
    )


def committed_files(config: PipelineConfig, plan: PlanResult) -> list[dict[str, object]]:
    """Every data-lake file of this version, from the compaction done-markers, relative to the version folder."""
    root = plan.version_root
    files = []
    for marker in read_markers(config.location, COMPACT, "done").values():
        for f in marker["files"]:
            relative = f["uri"][len(root) :]  # every file lies below the version folder
            files.append({"path": relative, "size": f["size"], "n_record": f["n_record"]})
    return sorted(files, key=lambda f: str(f["path"]))


def publish_if_needed(config: PipelineConfig, plan: PlanResult) -> PublishResult | None:
    """Publish the validated version, unless an earlier run already did (``None`` then)."""
    commit = read_commit(plan.version_root)
    if commit is not None and commit.get("fingerprint") == plan.fingerprint:
        return None
    return publish(config, plan.version_root, plan.version, plan.fingerprint, committed_files(config, plan))


def publish_snapshot(config: PipelineConfig, progress: Progress | None = None) -> PublishResult | None:
    """Validate the compacted version, then publish it: the last step when an external orchestrator (Step
    Functions, a Dask driver) runs the stages one by one."""
    with run_lock(config.location):
        validate_datalake(config, progress)  # raises ValidationError: nothing is published
        return publish_if_needed(config, require_plan(config))
