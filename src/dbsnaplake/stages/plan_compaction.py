"""Stage 3, plan compaction: from the staging manifests (never by listing data), pack each partition's staging
files into partition file groups and write one manifest per group.

A partition whose staging files hold at most ``MAX_GROUP_TARGETS`` target files' worth of bytes is one group,
so its output is full files plus one remainder. A bigger partition is cut into groups of about equal size,
each large enough to be split into equal files close to the target.

Small partitions (at most half a target file of staging bytes, so one data-lake file each) are packed, in
partition order, into groups of several partitions: one task per pack rather than per partition, so thousands of
tiny partitions cost tens of tasks. The staging manifests are read, and the group manifests written, in parallel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from dbsnaplake import storage
from dbsnaplake.binpack import pack_in_order, split_evenly
from dbsnaplake.config.settings import PipelineConfig, planned_config
from dbsnaplake.frames.schema import decode_schema, encode_schema, unify
from dbsnaplake.layout import PARTITION_FILE_GROUPS_FOLDER, S3Location
from dbsnaplake.ledger import Ledger, compaction_fingerprint
from dbsnaplake.manifest import N_RECORD, PARTITION, SIZE, URI, write_manifest
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import PartitionFileGroup, PlanCompactionResult
from dbsnaplake.storage.parallel import map_io

MAX_GROUP_TARGETS = 16
"""A split partition's groups hold 8-16 targets' worth, so each splits into equal files within a few % of the
target (n files for n ± 0.5 targets' worth: at worst 1/16 off at n = 8)."""
SMALL_PARTITION_SHARE = 0.5
"""A partition of at most half a target of staging bytes is small: it makes one data-lake file, and is packed."""
MIN_PACKS = 16
"""Small partitions are spread over at least this many packs (when there are as many), so workers share them."""
MIN_PACK_SIZE = 8 * 1024**2
"""...but a pack holds at least this many staging bytes (a task costs tens of milliseconds on its own)."""
MAX_PACKED_PARTITIONS = 1_000
"""Partitions in one pack at most: its done-marker lists each one's data-lake file."""


@dataclass(frozen=True)
class PlannedGroup:
    """One partition file group: the rows of the staging file table it compacts, and which partitions they are."""

    partitions: tuple[str, ...]
    rows: list[int]
    position: int = 0
    count: int = 1


def partition_rows(files: pa.Table) -> dict[str, list[int]]:
    """Each partition's rows of the staging file table, in partition order; rows in table order within one."""
    order = pc.sort_indices(files, sort_keys=[(PARTITION, "ascending")])  # a stable sort
    partitions = files[PARTITION].take(order).to_pylist()
    rows: dict[str, list[int]] = {}
    for partition, row in zip(partitions, order.to_pylist(), strict=True):
        rows.setdefault(partition, []).append(row)
    return rows


def plan_groups(by_partition: dict[str, list[int]], sizes: list[int], target: int) -> list[PlannedGroup]:
    """Big partitions cut into groups of at most ``MAX_GROUP_TARGETS`` targets; small ones packed, all in
    partition order (a pack where its first partition comes)."""
    small_limit = target * SMALL_PARTITION_SHARE
    totals = {partition: sum(sizes[i] for i in rows) for partition, rows in by_partition.items()}
    small = [p for p in by_partition if totals[p] <= small_limit]
    small_total = sum(totals[p] for p in small)
    pack_size = min(target, max(MIN_PACK_SIZE, math.ceil(small_total / MIN_PACKS)))
    packs = pack_in_order([totals[p] for p in small], pack_size)
    packs = [chunk for pack in packs for chunk in _chunks(pack, MAX_PACKED_PARTITIONS)]
    pack_at = {small[pack[0]]: tuple(small[i] for i in pack) for pack in packs}
    small_set = set(small)

    planned: list[PlannedGroup] = []
    for partition, rows in by_partition.items():
        if partition in pack_at:
            packed = pack_at[partition]
            planned.append(PlannedGroup(packed, [row for p in packed for row in by_partition[p]]))
        elif partition not in small_set:
            groups = split_evenly([sizes[i] for i in rows], target * MAX_GROUP_TARGETS)
            for position, members in enumerate(groups):
                planned.append(PlannedGroup((partition,), [rows[i] for i in members], position, len(groups)))
    return planned


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def write_group_manifest(
    location: S3Location, number: int, group: PlannedGroup, files: pa.Table, template: PartitionFileGroup
) -> str:
    """Write group ``number``'s manifest; returns its summary's URI."""
    summary = location.group_manifest_summary(PARTITION_FILE_GROUPS_FOLDER, number)
    header = PartitionFileGroup(
        group=number,
        partition=group.partitions[0],
        group_in_partition=group.position,
        groups_in_partition=group.count,
        target_file_size=template.target_file_size,
        schema=template.schema,
        version_root=template.version_root,
        settings=template.settings,
        packed=group.partitions if len(group.partitions) > 1 else (),
    )
    rows = files.take(pa.array(group.rows, pa.int64()))
    write_manifest(summary, rows, header, location.group_manifest_data(PARTITION_FILE_GROUPS_FOLDER, number))
    return summary


def plan_compaction(config: PipelineConfig, progress: Progress | None = None) -> PlanCompactionResult:
    """Write the partition file group manifests, then ``state/plan-compaction.json`` (last). ``config`` must agree
    with the plan's settings."""
    progress = progress or NoProgress()
    ledger = Ledger(config.location)
    plan = ledger.require_plan()
    config = planned_config(plan.settings, config, config.location.s3dir_staging)
    location = config.location
    ledger.forget_compaction_plan()
    manifests = ledger.staging_manifests(progress)
    schema = unify(
        [(f"staging group {h.group} ({m.summary_uri})", decode_schema(h.schema)) for m, h in manifests]
    )
    files = pa.concat_tables([m.files.select([URI, SIZE, N_RECORD, PARTITION]) for m, _ in manifests])
    by_partition = partition_rows(files)
    sizes = files[SIZE].to_pylist()

    storage.delete_folder(location.s3dir_partition_file_group_manifest)
    planned = plan_groups(by_partition, sizes, config.target_file_size)
    if not planned:  # a table of 0 rows: one group writes one empty file with the schema, so every reader opens it
        planned.append(PlannedGroup(("",), []))

    progress.start("write partition file group manifests", len(planned))
    template = PartitionFileGroup(
        group=0,
        partition="",
        group_in_partition=0,
        groups_in_partition=1,
        target_file_size=config.target_file_size,
        schema=encode_schema(schema),
        version_root=plan.version_root,
        settings=config.to_dict(),
    )
    summaries = map_io(
        lambda numbered: write_group_manifest(location, numbered[0], numbered[1], files, template),
        list(enumerate(planned, start=1)),
        progress,
    )
    result = PlanCompactionResult(
        n_partition=len(by_partition),
        n_staging_file=files.num_rows,
        staging_size=sum(sizes),
        staging_records=sum(files[N_RECORD].to_pylist()),
        group_manifests=tuple(summaries),
        fingerprint=compaction_fingerprint(plan.fingerprint, config.target_file_size),
        version_root=plan.version_root,
    )
    ledger.write_compaction_plan(result)
    return result
