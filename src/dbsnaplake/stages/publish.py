"""Publishing the data lake atomically, so that a reader never sees a half-compacted lake or two snapshots mixed.

Compaction writes every file of a snapshot into a *version folder*; nothing there is a commitment until the
run has validated it. Publishing then writes, last:

- ``<version folder>/_SUCCESS``: a JSON commit record listing every file (size, records) of the version.
  A version folder without it is being written, or was abandoned; readers must skip it.
- in ``latest`` mode, ``<datalake>/_latest.json``: the pointer to the current version folder, switched with a
  compare-and-swap (S3 ``If-Match``), and never from a newer snapshot back to an older one.

Two modes, the seed's two layouts:

- ``historical``: the version folder is the ``--datalake`` folder itself, one per snapshot
  (``datalake/mydatabase/mytable_2021_01_01_08_30_00/``). Once committed it is never rewritten.
- ``latest``: ``--datalake`` is a static path (``datalake/mydatabase/mytable/``); each snapshot goes to
  ``version=2021_01_01_08_30_00/`` below it and ``_latest.json`` names the current one. Older versions stay
  readable for queries already running, until ``dbsnaplake versions remove`` deletes them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from dbsnaplake import storage
from dbsnaplake.config.settings import PipelineConfig, planned_config
from dbsnaplake.errors import ConfigError, StageError
from dbsnaplake.formats.delta import check_delta, commit_delta
from dbsnaplake.formats.hive import committed_schema, default_table_name, published_table
from dbsnaplake.formats.iceberg import check_iceberg, commit_iceberg
from dbsnaplake.layout import SUCCESS_FILE, VERSION_FOLDER, VERSION_PREFIX, success_file
from dbsnaplake.ledger import (
    COMPACT,
    Ledger,
    latest_root,
    read_commit,
    read_latest,
    read_published,
    switch_latest,
    write_commit,
)
from dbsnaplake.records import Commit, CommittedFile, PlanResult, PublishResult


def committed_files(ledger: Ledger, plan: PlanResult) -> tuple[CommittedFile, ...]:
    """Every data-lake file of this version, from the compaction done-markers, relative to the version folder."""
    root = plan.version_root
    files = [
        CommittedFile(path=f.uri[len(root) :], size=f.size, n_record=f.n_record)  # every file lies below the root
        for result in ledger.read_done(COMPACT).values()
        for f in result.files
    ]
    return tuple(sorted(files, key=lambda f: f.path))


def sizes_by_uri(root: str, files: Sequence[CommittedFile]) -> dict[str, int]:
    """The committed files' sizes by URI (their paths are relative to the version folder ``root``)."""
    return {root + f.path: f.size for f in files}


def publish(config: PipelineConfig) -> PublishResult | None:
    """Commit the validated version folder (``_SUCCESS`` last), then, in ``latest`` mode, switch ``_latest.json`` to
    it. Returns ``None`` when an earlier run already published this snapshot. ``config`` must agree with the plan."""
    ledger = Ledger(config.location)
    plan = ledger.require_plan()
    config = planned_config(plan.settings, config, config.location.s3dir_staging)
    commit = read_commit(plan.version_root)
    if commit is not None and commit.fingerprint == plan.fingerprint:
        finish(config, plan, commit)  # a run killed after _SUCCESS: switch, commit the table, register
        return None
    validation = ledger.read_validation()
    if validation is None or not validation.ok:
        state = "has not been validated" if validation is None else "failed validation"
        raise StageError(
            f"the data lake of {config.location.s3dir_staging} {state}: run 'dbsnaplake validate' (or 'publish', which "
            "validates first) and fix what it reports"
        )
    files = committed_files(ledger, plan)
    n_record = sum(f.n_record for f in files)
    record = Commit(
        version=plan.version,
        fingerprint=plan.fingerprint,
        published_at=time.time(),
        n_file=len(files),
        n_record=n_record,
        files=files,
        schema=committed_schema(plan.version_root, files, config.partition_by, plan.lake_schema),
        partition_by=config.partition_by,
    )
    storage.remove_temporary_files(plan.version_root)  # left by killed writers: a committed folder holds no debris
    check_table(config, plan, files)
    write_commit(plan.version_root, record)
    return finish(config, plan, record)


def finish(config: PipelineConfig, plan: PlanResult, commit: Commit) -> PublishResult:
    """What follows ``_SUCCESS``, each step idempotent so a rerun completes what a crash cut off: in ``latest``
    mode the switch of ``_latest.json`` (never back to an older snapshot), then the table format's commit, then
    the Glue registration."""
    lake = config.location.s3dir_datalake
    moved = config.publish == "latest" and switch_latest(lake, plan.version_root, plan.version)
    current = read_latest(lake) if config.publish == "latest" and not moved else None
    newer = current[0].version if current is not None else None
    table = publish_table(config, plan, commit)
    registered = register_in_catalog(config)
    return PublishResult(plan.version_root, commit.n_file, commit.n_record, moved, newer, table, registered)


def check_table(config: PipelineConfig, plan: PlanResult, files: Sequence[CommittedFile]) -> None:
    """Refuse, before anything is published, a snapshot the table format cannot take."""
    if config.table_format == "delta":
        check_delta(config, plan)
    if config.table_format == "iceberg":
        check_iceberg(config, sizes_by_uri(plan.version_root, files))


def publish_table(config: PipelineConfig, plan: PlanResult, commit: Commit) -> str | None:
    """The table format's commit of a published snapshot (after ``_SUCCESS``: the files it names are immutable)."""
    if config.table_format == "iceberg":
        return commit_iceberg(config, plan.fingerprint, plan.version, sizes_by_uri(plan.version_root, commit.files))
    return commit_delta(config, plan, commit) if config.table_format == "delta" else None


def register_in_catalog(config: PipelineConfig) -> str | None:
    """With ``--glue-database``: register the published lake in Glue (idempotent); what was done, as a line."""
    if not config.glue_database:
        return None
    from dbsnaplake.formats.glue import register_in_glue

    lake = config.location.s3dir_datalake
    table = published_table(*read_published(lake))
    return str(register_in_glue(table, config.glue_database, default_table_name(lake)))


@dataclass(frozen=True)
class Version:
    stamp: str
    root: str
    committed: bool
    current: bool
    n_file: int
    size: int


def list_versions(lake: str) -> list[Version]:
    """The version folders of a ``latest``-mode lake, oldest first."""
    lake = storage.as_dir(lake)
    current = latest_root(lake)
    found: dict[str, list[storage.ObjectInfo]] = {}
    for info in storage.list_files(lake):
        match = VERSION_FOLDER.match(info.uri[len(lake) :])
        if match:
            found.setdefault(match.group(1), []).append(info)
    versions = []
    for stamp in sorted(found):
        root = storage.as_dir(storage.join(lake, f"{VERSION_PREFIX}{stamp}"))
        infos = found[stamp]
        versions.append(
            Version(
                stamp=stamp,
                root=root,
                committed=any(storage.base_name(i.uri) == SUCCESS_FILE for i in infos),
                current=root == current,
                n_file=sum(1 for i in infos if i.uri.endswith(".parquet")),
                size=sum(i.size for i in infos),
            )
        )
    return versions


def remove_version_folder(root: str) -> int:
    """Uncommit first (readers stop trusting it), then delete the files."""
    storage.delete(success_file(root))
    return storage.delete_folder(root)


def remove_old_versions(lake: str, keep: int) -> list[Version]:
    """Delete every version folder but the current one and the ``keep - 1`` newest committed ones before it.
    Versions newer than the current one (being written by a running job) are left alone."""
    if keep < 1:
        raise ConfigError(f"--keep must be at least 1 (the current version is never removed), got {keep}")
    versions = list_versions(lake)
    current = next((v for v in versions if v.current), None)
    if current is None:
        raise StageError(f"{lake} has no _latest.json: nothing is published there yet, nothing to remove")
    older = [v for v in versions if v.stamp < current.stamp]
    kept_committed = [v for v in older if v.committed][-(keep - 1) :] if keep > 1 else []
    removed = [v for v in older if v not in kept_committed]
    for version in removed:
        remove_version_folder(version.root)
    return removed
