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

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import storage
from .config import PipelineConfig
from .errors import ConfigError, StageError
from .state import read_json, write_json

SUCCESS_MARKER = "_SUCCESS"
LATEST_POINTER = "_latest.json"
VERSION_PREFIX = "version="
STAMP_FORMAT = "%Y_%m_%d_%H_%M_%S"
_SNAPSHOT_SEGMENT = re.compile(r"(?:^|/)snapshot=([^/]+)")
_VERSION_FOLDER = re.compile(r"^version=(\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2})/")


def snapshot_time_of(config: PipelineConfig) -> datetime:
    """``--snapshot-time``, else the staging path's ``snapshot=<ISO time>`` segment, else now."""
    text = config.snapshot_time
    if text is None:
        match = _SNAPSHOT_SEGMENT.search(config.location.s3dir_staging)
        text = match.group(1) if match else None
    if text is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    return parse_snapshot_time(text)


def parse_snapshot_time(text: str) -> datetime:
    """An ISO 8601 time (``2021-01-01T08:30:00Z``), as UTC; a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"snapshot time {text!r} is not an ISO 8601 time (2021-01-01T08:30:00Z): set --snapshot-time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def version_stamp(moment: datetime) -> str:
    """``2021_01_01_08_30_00``: the seed's ``mytable_YYYY_MM_DD_HH_MM_SS`` suffix."""
    return moment.strftime(STAMP_FORMAT)


def version_root(config: PipelineConfig, stamp: str) -> str:
    """Where compaction writes this snapshot's files."""
    lake = config.location.s3dir_datalake
    if config.publish == "historical":
        return lake
    return storage.as_dir(storage.join(lake, f"{VERSION_PREFIX}{stamp}"))


def success_uri(root: str) -> str:
    return storage.join(root, SUCCESS_MARKER)


def read_commit(root: str) -> dict[str, Any] | None:
    """The commit record of a version folder, or ``None`` when it is not (yet) committed."""
    return read_json(success_uri(root))


def refuse_rewriting_published(root: str) -> None:
    """A committed version folder is immutable: readers may be reading it right now."""
    if read_commit(root) is not None:
        raise ConfigError(
            f"{root} holds a published snapshot, which is never rewritten (readers may be using it). "
            "To make another version of this snapshot, choose a new --datalake folder (historical) or another "
            f"--snapshot-time (latest); to rebuild it, remove it first: dbsnaplake versions remove --version {root}"
        )


@dataclass(frozen=True)
class PublishResult:
    root: str
    n_file: int
    n_record: int
    pointer_moved: bool

    def __str__(self) -> str:
        where = f"{self.root} (_latest.json points to it)" if self.pointer_moved else self.root
        return f"{self.n_file:,} files, {self.n_record:,} records committed in {where}"


def publish(
    config: PipelineConfig, root: str, stamp: str, fingerprint: str, files: list[dict[str, Any]]
) -> PublishResult:
    """Commit the version folder (``_SUCCESS`` last), then, in ``latest`` mode, switch ``_latest.json`` to it."""
    n_record = sum(int(f["n_record"]) for f in files)
    commit = {
        "version": stamp,
        "fingerprint": fingerprint,
        "published_at": time.time(),
        "n_file": len(files),
        "n_record": n_record,
        "files": files,
    }
    storage.remove_temporary_files(root)  # left by writers that were killed: a committed folder holds no debris
    write_json(success_uri(root), commit)
    moved = config.publish == "latest" and switch_latest(config.location.s3dir_datalake, root, stamp)
    return PublishResult(root, len(files), n_record, moved)


def switch_latest(lake: str, root: str, stamp: str) -> bool:
    """Point ``_latest.json`` at ``root`` unless it names a newer version; safe against concurrent publishers."""
    pointer = storage.join(lake, LATEST_POINTER)
    for _ in range(20):
        current = storage.read_versioned(pointer)
        if current is not None:
            named = json.loads(current[0])
            if named["version"] > stamp:
                return False
            if named["version"] == stamp and named["uri"] == root:
                return True
        body = json.dumps({"version": stamp, "uri": root, "published_at": time.time()}, indent=2).encode()
        if storage.replace_if_unchanged(pointer, body, current[1] if current else None):
            return True
    raise StageError(f"could not switch {pointer}: other publishers keep changing it; rerun to retry")


def latest_root(lake: str) -> str | None:
    """The version folder ``_latest.json`` names, or ``None`` before the first publish."""
    found = storage.read_versioned(storage.join(lake, LATEST_POINTER))
    return None if found is None else str(json.loads(found[0])["uri"])


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
        match = _VERSION_FOLDER.match(info.uri[len(lake) :])
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
                committed=any(storage.base_name(i.uri) == SUCCESS_MARKER for i in infos),
                current=root == current,
                n_file=sum(1 for i in infos if i.uri.endswith(".parquet")),
                size=sum(i.size for i in infos),
            )
        )
    return versions


def remove_version_folder(root: str) -> int:
    """Uncommit first (readers stop trusting it), then delete the files."""
    storage.delete(success_uri(root))
    return storage.delete_folder(root)


def remove_old_versions(lake: str, keep: int) -> list[Version]:
    """Delete every version folder but the current one and the ``keep - 1`` newest committed ones before it.
    Versions newer than the current one (being written by a running job) are left alone."""
    if keep < 1:
        raise ConfigError(f"--keep must be at least 1 (the current version is never removed), got {keep}")
    versions = list_versions(lake)
    current = next((v for v in versions if v.current), None)
    if current is None:
        raise StageError(f"{lake} has no {LATEST_POINTER}: nothing is published there yet, nothing to remove")
    older = [v for v in versions if v.stamp < current.stamp]
    kept_committed = [v for v in older if v.committed][-(keep - 1) :] if keep > 1 else []
    removed = [v for v in older if v not in kept_committed]
    for version in removed:
        remove_version_folder(version.root)
    return removed
