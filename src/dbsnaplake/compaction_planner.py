"""Stage 3, plan compaction: from the staging manifests (never by listing data), pack each partition's staging
files into partition file groups and write one manifest per group.

A partition whose staging files hold at most ``MAX_GROUP_TARGETS`` target files' worth of bytes is one group,
so its output is full files plus one remainder. A bigger partition is cut into groups of about equal size,
each large enough to be split into equal files close to the target.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from . import storage
from .binpack import split_evenly
from .concurrency import map_io
from .config import PipelineConfig
from .errors import StageError
from .etl import PARTITION
from .location import (
    PARTITION_FILE_GROUPS_FOLDER,
    SNAPSHOT_FILE_GROUPS_FOLDER,
    STAGING_FILE_GROUPS_FOLDER,
    S3Location,
    datalake_file_name,
)
from .manifest import N_RECORD, SIZE, URI, Manifest, read_manifest, write_manifest
from .planner import PlanResult, list_group_manifests, read_plan
from .progress import NoProgress, Progress
from .schema import decode_schema, encode_schema, unify
from .state import (
    COMPACT,
    COMPACTION_PLAN_MARKER,
    ETL,
    clear_stage,
    compaction_fingerprint,
    done_groups,
    marker_uri,
    read_json,
    write_json,
)

MAX_GROUP_TARGETS = 16
"""A split partition's groups hold 8-16 targets' worth, so each splits into equal files within a few % of the
target (n files for n ± 0.5 targets' worth: at worst 1/16 off at n = 8)."""


@dataclass(frozen=True)
class CompactionPlan:
    n_partition: int
    n_staging_file: int
    staging_size: int
    staging_records: int
    group_manifests: tuple[str, ...]
    fingerprint: str
    version_root: str

    def to_marker(self) -> dict[str, Any]:
        data = asdict(self)
        data["group_manifests"] = list(self.group_manifests)
        return data

    @classmethod
    def from_marker(cls, data: dict[str, Any]) -> CompactionPlan:
        return cls(**{**data, "group_manifests": tuple(data["group_manifests"])})

    def __str__(self) -> str:
        return (
            f"planned {len(self.group_manifests)} partition file groups over {self.n_partition} partitions "
            f"({self.n_staging_file} staging files)"
        )


def read_staging_manifests(config: PipelineConfig, progress: Progress | None = None) -> list[Manifest]:
    """Every snapshot file group's staging manifest; fails naming the groups whose ETL has not finished."""
    location = config.location
    groups = list_group_manifests(location, SNAPSHOT_FILE_GROUPS_FOLDER)
    if not groups:
        raise StageError(
            f"no snapshot file groups under {location.s3dir_snapshot_file_group_manifest}: run 'dbsnaplake plan' first"
        )
    numbers = list(range(1, len(groups) + 1))
    staging = [location.group_manifest_summary(STAGING_FILE_GROUPS_FOLDER, n) for n in numbers]
    done = done_groups(location, ETL)  # one listing of the done-markers, not a request per group
    missing = [n for n in numbers if n not in done]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise StageError(
            f"ETL has not finished for {len(missing)} of {len(groups)} snapshot file groups ({shown}): run "
            f"'dbsnaplake etl --group-manifest {location.group_manifest_summary(SNAPSHOT_FILE_GROUPS_FOLDER, missing[0])}'"
            " for each, or 'dbsnaplake run'"
        )
    if progress:
        progress.start("read staging manifests", len(staging))
    return map_io(read_manifest, staging, progress)


def require_plan(config: PipelineConfig) -> PlanResult:
    plan = read_plan(config.location)
    if plan is None:
        raise StageError(
            f"no complete plan in {config.location.s3dir_staging_manifest}: run 'dbsnaplake plan' (or 'run') first"
        )
    return plan


def read_compaction_plan(location: S3Location) -> CompactionPlan | None:
    data = read_json(marker_uri(location, COMPACTION_PLAN_MARKER))
    return None if data is None else CompactionPlan.from_marker(data)


def plan_compaction(config: PipelineConfig, progress: Progress | None = None) -> CompactionPlan:
    """Write the partition file group manifests, then ``state/plan-compaction.json`` (last)."""
    progress = progress or NoProgress()
    plan = require_plan(config)
    location = config.location
    storage.delete(marker_uri(location, COMPACTION_PLAN_MARKER))
    clear_stage(location, COMPACT)
    manifests = read_staging_manifests(config, progress)
    schema = unify(
        [(f"staging group {m.extra['group']} ({m.summary_uri})", decode_schema(m.extra["schema"])) for m in manifests]
    )
    files = pa.concat_tables([m.files.select([URI, SIZE, N_RECORD, PARTITION]) for m in manifests])
    by_partition: dict[str, list[int]] = defaultdict(list)
    for index, partition in enumerate(files[PARTITION].to_pylist()):
        by_partition[partition].append(index)

    storage.delete_folder(location.s3dir_partition_file_group_manifest)
    max_group = config.target_file_size * MAX_GROUP_TARGETS
    sizes = files[SIZE].to_pylist()
    planned: list[tuple[str, list[int], int, int]] = []
    for partition in sorted(by_partition):
        rows = by_partition[partition]
        groups = split_evenly([sizes[i] for i in rows], max_group)
        for position, members in enumerate(groups):
            planned.append((partition, [rows[i] for i in members], position, len(groups)))

    progress.start("write partition file group manifests", len(planned))
    summaries = []
    for number, (partition, rows, position, count) in enumerate(planned, start=1):
        summary = location.group_manifest_summary(PARTITION_FILE_GROUPS_FOLDER, number)
        write_manifest(
            summary,
            files.take(rows),
            extra={
                "stage": PARTITION_FILE_GROUPS_FOLDER,
                "group": number,
                "partition": partition,
                "group_in_partition": position,
                "groups_in_partition": count,
                "target_file_size": config.target_file_size,
                "schema": encode_schema(schema),
                "version_root": plan.version_root,
            },
            data_uri=location.group_manifest_data(PARTITION_FILE_GROUPS_FOLDER, number),
        )
        summaries.append(summary)
        progress.advance()
    result = CompactionPlan(
        n_partition=len(by_partition),
        n_staging_file=files.num_rows,
        staging_size=sum(sizes),
        staging_records=sum(files[N_RECORD].to_pylist()),
        group_manifests=tuple(summaries),
        fingerprint=compaction_fingerprint(config, plan.fingerprint),
        version_root=plan.version_root,
    )
    write_json(marker_uri(location, COMPACTION_PLAN_MARKER), result.to_marker())
    return result


def datalake_file_uri(version_root: str, partition: str, group_in_partition: int, index: int) -> str:
    return storage.join(version_root, partition, datalake_file_name(group_in_partition, index))
