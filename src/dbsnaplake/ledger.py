"""The run ledger: a run's progress, kept in the store beside the manifests so that any rerun, on any machine,
can resume. Resume is *planned minus done*, and this module is where both are read and written.

``STAGING/manifests/state/``::

    plan.json                     written last by planning: settings, fingerprint, groups, version to publish
    plan-compaction.json          written last by compaction planning
    run.json                      how the last 'run' went, stage by stage (for the run report)
    etl/done-<n>.json             written by a worker after every output of ETL group n exists
    etl/failed-<n>.json           the last error of a group that failed (removed when it succeeds)
    compact/done-<n>.json         written after every data-lake file of partition file group n exists
    compact/failed-<n>.json
    lock.json                     the run holding this staging area (see :mod:`dbsnaplake.run.lock`)

Every group's outputs have deterministic names, so a group that died half-way is simply run again: it
overwrites what it wrote, and only a done-marker makes its outputs count. The publish commit (``_SUCCESS``) and
the ``latest`` pointer live in the data lake; they are read and written here too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from dbsnaplake import storage
from dbsnaplake.errors import ConfigError, RecordError, StageError
from dbsnaplake.layout import (
    DATALAKE_FILE,
    FILE_GROUP_KINDS,
    MANIFEST_SUMMARY_FOLDER,
    PLAN_COMPACTION_FILE,
    PLAN_FILE,
    RUN_TIMES_FILE,
    SNAPSHOT_FILE_GROUPS_FOLDER,
    STAGING_FILE_GROUPS_FOLDER,
    S3Location,
    latest_pointer,
    parse_group_manifest,
    parse_group_marker,
    success_file,
)
from dbsnaplake.manifest import Manifest, read_group_manifests
from dbsnaplake.progress import Progress
from dbsnaplake.records import (
    Commit,
    CompactResult,
    EtlResult,
    FailedGroup,
    LatestPointer,
    PlanCompactionResult,
    PlanResult,
    RunTimes,
    StagingFileGroup,
    StoredRecord,
    ValidateResult,
)
from dbsnaplake.storage.parallel import map_io

Stage = Literal["etl", "compact"]
ETL: Literal["etl"] = "etl"
COMPACT: Literal["compact"] = "compact"
GROUP_STAGES: tuple[Stage, ...] = (ETL, COMPACT)
RESULT_RECORDS: dict[str, type[EtlResult] | type[CompactResult]] = {ETL: EtlResult, COMPACT: CompactResult}
S = TypeVar("S", bound=StoredRecord)


def read_record(kind: type[S], uri: str) -> S | None:
    """The record stored at ``uri``, or ``None`` when there is none."""
    try:
        raw = storage.read_bytes(uri)
    except FileNotFoundError:
        return None
    return kind.from_json(raw, uri)


def read_current(kind: type[S], uri: str) -> S | None:
    """The record at ``uri``, or ``None`` when there is none or it was written by an earlier release (whatever it
    recorded is then done again)."""
    try:
        return read_record(kind, uri)
    except RecordError:
        return None


def write_record(uri: str, record: StoredRecord) -> None:
    storage.write_bytes(uri, record.to_json())


def fingerprint(values: Mapping[str, Any]) -> str:
    """A short, stable digest of JSON-ready values."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Ledger:
    """The state of one staging area (one snapshot of one table)."""

    location: S3Location

    @classmethod
    def of_staging(cls, staging: str) -> Ledger:
        """The ledger of a staging root (the data-lake root is not needed to read state)."""
        return cls(S3Location(s3uri_staging=staging, s3uri_datalake=staging))

    @classmethod
    def of_group_manifest(cls, uri: str) -> Ledger:
        """The ledger of the staging area a group manifest belongs to."""
        return cls.of_staging(parse_group_manifest(uri).staging)

    # ---- plans --------------------------------------------------------------------------------------------
    def read_plan(self) -> PlanResult | None:
        """The plan a previous run completed here, or ``None`` (also for a plan of an older dbsnaplake)."""
        return read_current(PlanResult, self.location.state_file(PLAN_FILE))

    def require_plan(self) -> PlanResult:
        plan = self.read_plan()
        if plan is None:
            raise StageError(
                f"no complete plan in {self.location.s3dir_staging_manifest}: run 'dbsnaplake plan' (or 'run') first"
            )
        return plan

    def write_plan(self, plan: PlanResult) -> None:
        """Last step of planning: from now on the plan counts."""
        write_record(self.location.state_file(PLAN_FILE), plan)

    def read_compaction_plan(self) -> PlanCompactionResult | None:
        return read_current(PlanCompactionResult, self.location.state_file(PLAN_COMPACTION_FILE))

    def write_compaction_plan(self, plan: PlanCompactionResult) -> None:
        write_record(self.location.state_file(PLAN_COMPACTION_FILE), plan)

    def forget_compaction_plan(self) -> None:
        """First step of compaction planning: the old plan and every compaction marker stop counting."""
        storage.delete(self.location.state_file(PLAN_COMPACTION_FILE))
        storage.delete(self.location.s3path_validate_datalake_result)
        self.clear_stage(COMPACT)

    def reset(self, version_root: str | None = None) -> None:
        """Forget what an earlier plan left: its state, group manifests, the staging lake, the validation result,
        and the data-lake files an uncommitted version folder holds."""
        location = self.location
        storage.delete(location.state_file(PLAN_FILE))  # first: a crash below leaves no plan that looks valid
        storage.delete(location.state_file(PLAN_COMPACTION_FILE))
        storage.delete(location.state_file(RUN_TIMES_FILE))
        for stage in GROUP_STAGES:
            self.clear_stage(stage)
        for kind in FILE_GROUP_KINDS:
            storage.delete_folder(storage.join(location.s3dir_staging_manifest, kind))
        storage.delete_folder(location.s3dir_staging_datalake)
        storage.delete(location.s3path_validate_datalake_result)
        if version_root is not None and read_commit(version_root) is None:
            for info in storage.list_files(version_root):
                if DATALAKE_FILE.match(storage.base_name(info.uri)):
                    storage.delete(info.uri)

    # ---- group manifests ----------------------------------------------------------------------------------
    def group_manifests(self, kind: str) -> list[str]:
        """The summary URIs of one kind of file group that exist, in group order."""
        folder = storage.join(self.location.s3dir_staging_manifest, kind, MANIFEST_SUMMARY_FOLDER)
        found = [i.uri for i in storage.list_files(folder) if i.uri.endswith(".json")]
        return sorted(found, key=lambda uri: parse_group_manifest(uri).group)

    def staging_manifests(self, progress: Progress | None = None) -> list[tuple[Manifest, StagingFileGroup]]:
        """Every snapshot file group's staging manifest; fails naming the groups whose ETL has not finished."""
        location = self.location
        plan = self.require_plan()
        numbers = list(range(1, len(plan.group_manifests) + 1))
        done = self.done_groups(ETL)  # one listing of the done-markers, not a request per group
        missing = [n for n in numbers if n not in done]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            first = location.group_manifest_summary(SNAPSHOT_FILE_GROUPS_FOLDER, missing[0])
            raise StageError(
                f"ETL has not finished for {len(missing)} of {len(numbers)} snapshot file groups ({shown}): run "
                f"'dbsnaplake etl --group-manifest {first}' for each, or 'dbsnaplake run'"
            )
        if progress:
            progress.start("read staging manifests", len(numbers))
        staging = [location.group_manifest_summary(STAGING_FILE_GROUPS_FOLDER, n) for n in numbers]
        return read_group_manifests(staging, StagingFileGroup, progress)

    # ---- group markers ------------------------------------------------------------------------------------
    def _markers(self, stage: Stage, kind: Literal["done", "failed"]) -> dict[int, str]:
        found = {}
        for info in storage.list_files(storage.join(self.location.s3dir_state, stage)):
            parsed = parse_group_marker(storage.base_name(info.uri))
            if parsed and parsed[0] == kind:
                found[parsed[1]] = info.uri
        return found

    def done_groups(self, stage: Stage) -> set[int]:
        """Groups of ``stage`` whose done-marker exists: one listing, no reads."""
        return set(self._markers(stage, "done"))

    def read_done(self, stage: Stage) -> dict[int, Any]:
        """The results of the done groups of ``stage`` (:class:`EtlResult` or :class:`CompactResult`), by group."""
        uris = self._markers(stage, "done")
        kind = RESULT_RECORDS[stage]
        results = map_io(lambda uri: read_record(kind, uri), list(uris.values()))
        return {group: r for group, r in zip(uris, results, strict=True) if r is not None}

    def read_failed(self, stage: Stage) -> dict[int, FailedGroup]:
        uris = self._markers(stage, "failed")
        results = map_io(lambda uri: read_record(FailedGroup, uri), list(uris.values()))
        return {group: r for group, r in zip(uris, results, strict=True) if r is not None}

    def mark_done(self, stage: Stage, result: EtlResult | CompactResult) -> None:
        """Record that every output of the group exists (flushed to the disk first: they were written with
        ``durable=False``). Called last by the worker that wrote them."""
        storage.make_durable(self.location.s3dir_staging, self.location.s3dir_datalake)
        write_record(self.location.group_marker(stage, "done", result.group), result)
        storage.delete(self.location.group_marker(stage, "failed", result.group))

    def mark_failed(self, stage: Stage, group: int, error: str, attempts: int) -> None:
        record = FailedGroup(group=group, failed_at=time.time(), attempts=attempts, error=error)
        write_record(self.location.group_marker(stage, "failed", group), record)

    def clear_stage(self, stage: Stage) -> None:
        storage.delete_folder(storage.join(self.location.s3dir_state, stage))

    @staticmethod
    def pending(group_manifests: Sequence[str], done: set[int]) -> list[str]:
        """Planned minus done: the group manifests still to run."""
        return [uri for uri in group_manifests if parse_group_manifest(uri).group not in done]

    def clean_staging_lake(self) -> tuple[int, int]:
        """Remove the staging lake (``STAGING/datalake/``) of a published snapshot, keeping the manifests, the state
        and the report; returns (files, bytes) removed. Refused while the snapshot is not published: the staging
        lake is what compaction reads."""
        plan = self.require_plan()
        commit = read_commit(plan.version_root)
        if commit is None or commit.fingerprint != plan.fingerprint:
            raise StageError(
                f"{self.location.s3dir_staging} holds a snapshot that is not published yet, so its staging lake is still "
                "needed: publish it first ('dbsnaplake run' or 'dbsnaplake publish'), then clean"
            )
        files = storage.list_files(self.location.s3dir_staging_datalake)
        storage.delete_folder(self.location.s3dir_staging_datalake)
        return len(files), sum(f.size for f in files)

    # ---- how the last run went ---------------------------------------------------------------------------
    def read_run_times(self) -> RunTimes | None:
        return read_current(RunTimes, self.location.state_file(RUN_TIMES_FILE))

    def write_run_times(self, times: RunTimes) -> None:
        write_record(self.location.state_file(RUN_TIMES_FILE), times)

    # ---- validation ---------------------------------------------------------------------------------------
    def read_validation(self) -> ValidateResult | None:
        return read_current(ValidateResult, self.location.s3path_validate_datalake_result)

    def write_validation(self, stored: Mapping[str, Any]) -> None:
        """``stored``: a :class:`ValidateResult`'s dict, with the original dbsnaplake's keys beside its fields
        (:func:`dbsnaplake.original_format.validation_dict`); :meth:`read_validation` reads the record back."""
        storage.write_bytes(self.location.s3path_validate_datalake_result, json.dumps(stored, indent=2).encode())


# ---- fingerprints -------------------------------------------------------------------------------------------

def plan_fingerprint(result_settings: Mapping[str, Any], manifest_digest: str) -> str:
    """Of the snapshot manifest and every setting that changes the result (``PipelineConfig.result_settings()``:
    the data lake, rows and their placement; worker count and memory change the speed, not the result)."""
    return fingerprint({"manifest": manifest_digest, **result_settings})


def compaction_fingerprint(plan: str, target_file_size: int) -> str:
    return fingerprint({"plan": plan, "target_file_size": target_file_size})


# ---- the data lake's commit and pointer --------------------------------------------------------------------


def read_commit(version_root: str) -> Commit | None:
    """The commit record of a version folder, or ``None`` when it is not (yet) committed."""
    return read_record(Commit, success_file(version_root))


def write_commit(version_root: str, commit: Commit) -> None:
    write_record(success_file(version_root), commit)


def refuse_rewriting_published(version_root: str) -> None:
    """A committed version folder is immutable: readers may be reading it right now."""
    if storage.exists(success_file(version_root)):
        raise ConfigError(
            f"{version_root} holds a published snapshot, which is never rewritten (readers may be using it). "
            "To make another version of this snapshot, choose a new --datalake folder (historical) or another "
            f"--snapshot-time (latest); to rebuild it, remove it first: dbsnaplake versions remove --version "
            f"{version_root}"
        )


def read_latest(datalake: str) -> tuple[LatestPointer, str] | None:
    """``_latest.json`` and its version token (for :func:`switch_latest`), or ``None`` before the first publish."""
    uri = latest_pointer(datalake)
    found = storage.read_versioned(uri)
    return None if found is None else (LatestPointer.from_json(found[0], uri), found[1])


def switch_latest(datalake: str, version_root: str, stamp: str) -> bool:
    """Point ``_latest.json`` at ``version_root`` unless it names a newer version; safe against concurrent
    publishers (compare-and-swap). Returns whether it points there now."""
    uri = latest_pointer(datalake)
    for _ in range(20):
        current = read_latest(datalake)
        if current is not None:
            named = current[0]
            if named.version > stamp:
                return False
            if named.version == stamp and named.uri == version_root:
                return True
        pointer = LatestPointer(version=stamp, uri=version_root, published_at=time.time())
        if storage.replace_if_unchanged(uri, pointer.to_json(), current[1] if current else None):
            return True
    raise StageError(f"could not switch {uri}: other publishers keep changing it; rerun to retry")


def latest_root(datalake: str) -> str | None:
    """The version folder ``_latest.json`` names, or ``None`` before the first publish."""
    current = read_latest(datalake)
    return None if current is None else current[0].uri


def read_published(datalake: str) -> tuple[str, Commit]:
    """The version of ``datalake`` readers read, and its commit: the one ``_latest.json`` names, or the folder
    itself (``--publish historical``)."""
    lake = storage.as_dir(datalake)
    root = latest_root(lake) or lake
    commit = read_commit(root)
    if commit is None:
        raise StageError(
            f"nothing is published at {lake} (no _latest.json, no _SUCCESS): publish the lake first "
            "('dbsnaplake run' or 'dbsnaplake publish'), then rerun"
        )
    return root, commit
