"""``dbsnaplake status``: where a run stands, read from the state in the staging area (nothing is changed)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from dbsnaplake import storage
from dbsnaplake.ledger import COMPACT, ETL, Ledger, Stage, read_commit
from dbsnaplake.run.lock import current_holder
from dbsnaplake.units import format_size


@dataclass(frozen=True)
class StageStatus:
    stage: str
    planned: int
    done: int
    failed: int
    bytes: int
    """Bytes the done groups read (ETL: snapshot bytes; compact: staging bytes)."""
    records: int
    """Records the done groups wrote."""
    errors: dict[int, str] = field(default_factory=dict)
    """The last error of each failed group."""

    @property
    def pending(self) -> int:
        return self.planned - self.done - self.failed


@dataclass(frozen=True)
class RunStatus:
    staging: str
    planned: bool
    compaction_planned: bool
    stages: tuple[StageStatus, ...]
    validated: bool | None
    """``None``: not validated yet."""
    published: bool
    version_root: str | None
    running: dict[str, Any] | None
    """The run holding the staging area right now, if any."""
    found: bool = True
    """Whether anything of a run is there at all (a mistyped path finds nothing)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        lines = [f"staging   : {self.staging}"]
        if self.running:
            lines.append(f"running   : pid {self.running.get('pid')} on {self.running.get('host')}")
        lines.append(f"plan      : {'done' if self.planned else 'not planned'}")
        for s in self.stages:
            lines.append(
                f"{s.stage:<10}: {s.done}/{s.planned} groups done, {s.failed} failed, {s.pending} pending; "
                f"{format_size(s.bytes)} read, {s.records:,} records written"
            )
            lines.extend(f"  group {group} failed: {error}" for group, error in sorted(s.errors.items()))
        validated = {None: "not yet", True: "OK", False: "FAILED"}[self.validated]
        lines.append(f"validation: {validated}")
        lines.append(
            f"published : {'yes' if self.published else 'no'}"
            + (f" ({self.version_root})" if self.version_root else "")
        )
        return "\n".join(lines)


def _stage(ledger: Ledger, stage: Stage, planned: int) -> StageStatus:
    done = ledger.read_done(stage)
    failed = {g: m for g, m in ledger.read_failed(stage).items() if g not in done}
    records = sum(r.n_record_out if stage == ETL else r.n_record for r in done.values())
    return StageStatus(
        stage=stage,
        planned=planned,
        done=len(done),
        failed=len(failed),
        bytes=sum(r.size_in for r in done.values()),
        records=records,
        errors={g: m.error for g, m in failed.items()},
    )


def run_status(staging: str) -> RunStatus:
    """Read the state of the staging area ``staging`` (the data-lake folder is taken from its plan)."""
    ledger = Ledger.of_staging(staging)
    plan = ledger.read_plan()
    compaction = ledger.read_compaction_plan() if plan else None
    stages = []
    if plan:
        stages.append(_stage(ledger, ETL, len(plan.group_manifests)))
    if compaction:
        stages.append(_stage(ledger, COMPACT, len(compaction.group_manifests)))
    validation = ledger.read_validation() if compaction else None
    commit = read_commit(plan.version_root) if plan else None
    holder = current_holder(ledger.location)
    return RunStatus(
        staging=ledger.location.s3dir_staging,
        planned=plan is not None,
        compaction_planned=compaction is not None,
        stages=tuple(stages),
        validated=None if validation is None else validation.ok,
        published=commit is not None and plan is not None and commit.fingerprint == plan.fingerprint,
        version_root=plan.version_root if plan else None,
        running=holder.to_dict() if holder else None,
        found=plan is not None or bool(storage.list_files(ledger.location.s3dir_staging_manifest)),
    )
