"""What the run report shows, read from a staging area's state: the plan, the snapshot manifest (file sizes), the
staging manifests (staging files per partition), the compaction done-markers (data-lake files), the groups'
timings, the run's per-stage seconds and the validation result.

A report is also made for a run that stopped half-way (a failed group, a failed validation): what is missing is
left out, and the report says so.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from dbsnaplake.config.settings import PipelineConfig
from dbsnaplake.errors import SnapshotError
from dbsnaplake.ledger import COMPACT, ETL, Ledger
from dbsnaplake.manifest import N_RECORD, PARTITION, SIZE, read_group_manifests, read_manifest
from dbsnaplake.records import (
    CompactResult,
    EtlResult,
    GroupTiming,
    PlanCompactionResult,
    PlanResult,
    RunTimes,
    StagingFileGroup,
    ValidateResult,
)


@dataclass(frozen=True)
class PartitionTotals:
    """One partition's staging and data-lake files, bytes and records."""

    partition: str
    staging_files: int = 0
    staging_bytes: int = 0
    staging_records: int = 0
    lake_files: int = 0
    lake_bytes: int = 0
    lake_records: int = 0

    @property
    def name(self) -> str:
        return self.partition or "(unpartitioned)"


@dataclass(frozen=True)
class GroupRun:
    """One group's run, as the Gantt draws it."""

    stage: str
    group: int
    timing: GroupTiming
    size_in: int
    what: str
    """What the group worked on: its snapshot files, or its partition."""

    @property
    def bytes_per_second(self) -> float:
        return self.size_in / max(self.timing.seconds, 1e-6)


@dataclass(frozen=True)
class ReportFacts:
    """Everything the report draws, gathered once from the store."""

    staging: str
    plan: PlanResult
    config: PipelineConfig
    snapshot_sizes: tuple[int, ...]
    staging_sizes: tuple[int, ...]
    lake_sizes: tuple[int, ...]
    partitions: tuple[PartitionTotals, ...]
    etl: tuple[EtlResult, ...]
    compaction: tuple[CompactResult, ...]
    compaction_plan: PlanCompactionResult | None
    run_times: RunTimes | None
    validation: ValidateResult | None
    notes: tuple[str, ...]
    """What is missing (a stage that has not run yet, a snapshot manifest that cannot be read), in words."""

    @property
    def target_file_size(self) -> int:
        return self.config.target_file_size

    @property
    def group_runs(self) -> tuple[GroupRun, ...]:
        """Every finished group that says when it ran, ETL first, each stage in group order."""
        runs = [
            GroupRun(ETL, r.group, r.timing, r.size_in, f"{r.n_file_in} snapshot files")
            for r in self.etl
            if r.timing is not None
        ]
        runs += [
            GroupRun(COMPACT, r.group, r.timing, r.size_in, r.what)
            for r in self.compaction
            if r.timing is not None
        ]
        return tuple(runs)

    def records_skew(self) -> float | None:
        """The largest partition's records over the median partition's (1.0: even), or ``None`` without records."""
        counts = [p.staging_records for p in self.partitions if p.staging_records]
        if not counts:
            return None
        return max(counts) / statistics.median(counts)


def gather(staging: str) -> ReportFacts:
    """Read what the report shows from the staging area ``staging``; fails only when it holds no plan."""
    ledger = Ledger.of_staging(staging)
    plan = ledger.require_plan()
    config = PipelineConfig.from_dict(plan.settings, f"the plan in {staging}")
    notes: list[str] = []

    snapshot_sizes: tuple[int, ...] = ()
    try:
        snapshot_sizes = tuple(read_manifest(config.manifest_uri).column(SIZE))
    except SnapshotError as exc:
        notes.append(f"snapshot file sizes are not shown: {exc}")

    etl = tuple(sorted(ledger.read_done(ETL).values(), key=lambda r: r.group))
    if len(etl) < len(plan.group_manifests):
        notes.append(f"ETL finished {len(etl)} of {len(plan.group_manifests)} snapshot file groups")
    staging_files = _staging_files([r.staging_manifest for r in etl])

    compaction_plan = ledger.read_compaction_plan()
    compaction = tuple(sorted(ledger.read_done(COMPACT).values(), key=lambda r: r.group))
    if compaction_plan is None:
        notes.append("compaction has not been planned yet")
    elif len(compaction) < len(compaction_plan.group_manifests):
        notes.append(f"compaction finished {len(compaction)} of {len(compaction_plan.group_manifests)} groups")
    lake_files = [(p, f.size, f.n_record) for r in compaction for p, f in r.files_by_partition]

    run_times = ledger.read_run_times()
    if run_times is None:
        notes.append("no 'dbsnaplake run' finished here: time per stage is not known")
    validation = ledger.read_validation()
    if validation is None:
        notes.append("the data lake has not been validated yet")
    return ReportFacts(
        staging=staging,
        plan=plan,
        config=config,
        snapshot_sizes=snapshot_sizes,
        staging_sizes=tuple(size for _, size, _ in staging_files),
        lake_sizes=tuple(size for _, size, _ in lake_files),
        partitions=partition_totals(staging_files, lake_files),
        etl=etl,
        compaction=compaction,
        compaction_plan=compaction_plan,
        run_times=run_times,
        validation=validation,
        notes=tuple(notes),
    )


FileEntry = tuple[str, int, int]
"""A file's partition, size and records."""


def _staging_files(staging_manifests: Sequence[str]) -> list[FileEntry]:
    files: list[FileEntry] = []
    for manifest, _ in read_group_manifests(staging_manifests, StagingFileGroup):
        columns = (manifest.column(PARTITION), manifest.column(SIZE), manifest.column(N_RECORD))
        files += [(p, s, n or 0) for p, s, n in zip(*columns, strict=True)]
    return files


def partition_totals(
    staging_files: Sequence[FileEntry], lake_files: Sequence[FileEntry]
) -> tuple[PartitionTotals, ...]:
    """Per partition, in partition order: what staging holds and what the data lake holds."""
    staging: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    lake: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for totals, files in ((staging, staging_files), (lake, lake_files)):
        for partition, size, n_record in files:
            entry = totals[partition]
            entry[0], entry[1], entry[2] = entry[0] + 1, entry[1] + size, entry[2] + n_record
    return tuple(
        PartitionTotals(p, *staging.get(p, (0, 0, 0)), *lake.get(p, (0, 0, 0)))
        for p in sorted(set(staging) | set(lake))
    )
