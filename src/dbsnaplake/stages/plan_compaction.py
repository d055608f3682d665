"""Stage 3, plan compaction: from the staging manifests (never by listing data), pack each partition's staging
files into partition file groups and write one manifest per group.

A partition whose staging files hold at most ``MAX_GROUP_TARGETS`` target files' worth of bytes is one group,
so its output is full files plus one remainder. A bigger partition is cut into groups of about equal size,
each large enough to be split into equal files close to the target.
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from dbsnaplake import storage
from dbsnaplake.binpack import split_evenly
from dbsnaplake.config.settings import PipelineConfig, planned_config
from dbsnaplake.frames.schema import decode_schema, encode_schema, unify
from dbsnaplake.layout import PARTITION_FILE_GROUPS_FOLDER
from dbsnaplake.ledger import Ledger, compaction_fingerprint
from dbsnaplake.manifest import N_RECORD, PARTITION, SIZE, URI, write_manifest
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import PartitionFileGroup, PlanCompactionResult

MAX_GROUP_TARGETS = 16
"""A split partition's groups hold 8-16 targets' worth, so each splits into equal files within a few % of the
target (n files for n ± 0.5 targets' worth: at worst 1/16 off at n = 8)."""


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
    if not planned:  # a table of 0 rows: one group writes one empty file with the schema, so every reader opens it
        planned.append(("", [], 0, 1))

    progress.start("write partition file group manifests", len(planned))
    summaries = []
    settings = config.to_dict()
    encoded_schema = encode_schema(schema)
    for number, (partition, rows, position, count) in enumerate(planned, start=1):
        summary = location.group_manifest_summary(PARTITION_FILE_GROUPS_FOLDER, number)
        header = PartitionFileGroup(
            group=number,
            partition=partition,
            group_in_partition=position,
            groups_in_partition=count,
            target_file_size=config.target_file_size,
            schema=encoded_schema,
            version_root=plan.version_root,
            settings=settings,
        )
        write_manifest(summary, files.take(pa.array(rows, pa.int64())), header, location.group_manifest_data(PARTITION_FILE_GROUPS_FOLDER, number))
        summaries.append(summary)
        progress.advance()
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
