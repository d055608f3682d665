"""A run's progress, kept in the store beside the manifests so that any rerun, on any machine, can resume.

``STAGING/manifests/state/``::

    plan.json                     written last by planning: settings fingerprint, groups, version to publish
    plan-compaction.json          written last by compaction planning
    etl/done-<n>.json             written by a worker after every output of ETL group n exists
    etl/failed-<n>.json           the last error of a group that failed (removed when it succeeds)
    compact/done-<n>.json         written after every data-lake file of partition file group n exists
    compact/failed-<n>.json
    lock.json                     the run holding this staging area (see :mod:`dbsnaplake.run_lock`)

Resume is *planned minus done*. Every group's outputs have deterministic names, so a group that died half-way
is simply run again: it overwrites what it wrote, and only a done-marker makes its outputs count.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from . import storage
from .concurrency import map_io
from .config import PipelineConfig
from .location import S3Location

STATE_FOLDER = "state"
ETL, COMPACT = "etl", "compact"
GROUP_STAGES = (ETL, COMPACT)
PLAN_MARKER = "plan.json"
COMPACTION_PLAN_MARKER = "plan-compaction.json"
_MARKER = re.compile(r"^(done|failed)-(\d+)\.json$")
_GROUP_MANIFEST = re.compile(r"manifest-summary-(\d+)\.json$")


def state_dir(location: S3Location) -> str:
    return storage.as_dir(storage.join(location.s3dir_staging_manifest, STATE_FOLDER))


def marker_uri(location: S3Location, name: str) -> str:
    return storage.join(state_dir(location), name)


def group_of(group_manifest: str) -> int:
    """The group number in ``.../manifest-summary-<n>.json``."""
    match = _GROUP_MANIFEST.search(group_manifest)
    if not match:
        raise ValueError(f"not a group manifest summary: {group_manifest}")
    return int(match.group(1))


def _group_marker(location: S3Location, stage: str, kind: str, group: int) -> str:
    return storage.join(state_dir(location), stage, f"{kind}-{group}.json")


def _dumps(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, indent=2, default=str).encode()


def write_json(uri: str, data: Mapping[str, Any]) -> None:
    storage.write_bytes(uri, _dumps(data))


def read_json(uri: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        return None
    return data


def mark_done(location: S3Location, stage: str, group: int, result: Mapping[str, Any]) -> None:
    """Record that every output of ``group`` exists. Called last by the worker that wrote them."""
    write_json(_group_marker(location, stage, "done", group), {"group": group, "finished_at": time.time(), **result})
    storage.delete(_group_marker(location, stage, "failed", group))


def mark_failed(location: S3Location, stage: str, group: int, error: str, attempts: int) -> None:
    write_json(
        _group_marker(location, stage, "failed", group),
        {"group": group, "failed_at": time.time(), "attempts": attempts, "error": error},
    )


def _markers(location: S3Location, stage: str, kind: str) -> dict[int, str]:
    folder = storage.join(state_dir(location), stage)
    found = {}
    for info in storage.list_files(folder):
        match = _MARKER.match(storage.base_name(info.uri))
        if match and match.group(1) == kind:
            found[int(match.group(2))] = info.uri
    return found


def done_groups(location: S3Location, stage: str) -> set[int]:
    """Groups of ``stage`` whose done-marker exists: one listing, no reads."""
    return set(_markers(location, stage, "done"))


def read_markers(location: S3Location, stage: str, kind: str) -> dict[int, dict[str, Any]]:
    """The done (or failed) markers of a stage, read in parallel."""
    uris = _markers(location, stage, kind)
    contents = map_io(read_json, list(uris.values()))
    return {group: data for group, data in zip(uris, contents, strict=True) if data is not None}


def clear_stage(location: S3Location, stage: str) -> None:
    storage.delete_folder(storage.join(state_dir(location), stage))


def settings_fingerprint(config: PipelineConfig, manifest_digest: str) -> str:
    """What decides the staging lake's content: the snapshot manifest and every setting that changes rows or
    their placement. Worker count and memory are left out: they change the speed, not the result."""
    settings = {
        "manifest": manifest_digest,
        "transform": config.transform,
        "partition_by": list(config.partition_by),
        "sort_by": [str(k) for k in config.sort_by],
        "group_size": config.group_size,
        "compression": config.compression,
        "on_bad_value": config.on_bad_value,
        "datalake": config.location.s3dir_datalake,
        "publish": config.publish,
        "snapshot_time": config.snapshot_time,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]


def compaction_fingerprint(config: PipelineConfig, plan_fingerprint: str) -> str:
    settings = {"plan": plan_fingerprint, "target_file_size": config.target_file_size}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
