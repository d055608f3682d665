"""Stage 5, validate: compare the data lake with the snapshot, in total and per partition.

Three layers are compared, all from metadata (manifests and Parquet footers, never the data):
the snapshot manifest's records against what ETL read; what ETL wrote (per partition) against what the data
lake's files hold (per partition). Any mismatch, or a data-lake file no partition accounts for, is a problem:
the result is written to ``manifests/validate-datalake-result.json`` and :class:`ValidationError` is raised.
"""

from __future__ import annotations

from collections import defaultdict

from dbsnaplake import storage
from dbsnaplake.config.settings import PipelineConfig, planned_config
from dbsnaplake.errors import ValidationError
from dbsnaplake.frames.readers import read_parquet_footer
from dbsnaplake.ledger import Ledger
from dbsnaplake.manifest import N_RECORD, PARTITION, SIZE, read_manifest
from dbsnaplake.progress import NoProgress, Progress
from dbsnaplake.records import PartitionCheck, Totals, ValidateResult
from dbsnaplake.storage.parallel import map_io


def share_near_target(sizes_by_partition: list[list[int]], target: int) -> float:
    """Share of files within ±10 % of ``target``, leaving out each partition's smallest file (its remainder)."""
    judged = [size for sizes in sizes_by_partition for size in sorted(sizes)[1:]]
    if not judged:
        return 1.0
    return sum(1 for size in judged if 0.9 * target <= size <= 1.1 * target) / len(judged)


def _partition_of(uri: str, root: str) -> str:
    relative = uri[len(root) :]
    return relative.rsplit("/", 1)[0] if "/" in relative else ""


def validate(config: PipelineConfig, progress: Progress | None = None) -> ValidateResult:
    """Compare the data lake with the snapshot; write the result, and raise :class:`ValidationError` on a mismatch.
    ``config`` must agree with the plan's settings."""
    progress = progress or NoProgress()
    location = config.location
    ledger = Ledger(location)
    plan = ledger.require_plan()
    config = planned_config(plan.settings, config, location.s3dir_staging)
    snapshot = read_manifest(config.manifest_uri)
    staging_manifests = ledger.staging_manifests(progress)
    headers = [h for _, h in staging_manifests]

    staging_by_partition: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for m, _ in staging_manifests:
        for partition, size, n in zip(m.column(PARTITION), m.column(SIZE), m.column(N_RECORD), strict=True):
            staging_by_partition[partition].append((size, n))

    root = plan.version_root
    lake_files = [i for i in storage.list_files(root) if i.uri.endswith(".parquet")]
    progress.start("read data lake footers", len(lake_files))
    footers = map_io(lambda info: read_parquet_footer(info.uri, info.size), lake_files, progress)
    lake_by_partition: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for info, footer in zip(lake_files, footers, strict=True):
        lake_by_partition[_partition_of(info.uri, root)].append((info.size, footer.n_record))

    def totals(entries: list[tuple[int, int]]) -> Totals:
        return Totals(len(entries), sum(s for s, _ in entries), sum(n for _, n in entries))

    partitions = tuple(
        PartitionCheck(p, totals(staging_by_partition.get(p, [])), totals(lake_by_partition.get(p, [])))
        for p in sorted(set(staging_by_partition) | set(lake_by_partition))
    )
    etl_in = sum(h.n_record_in for h in headers)
    etl_out = sum(h.n_record_out for h in headers)
    bad_values = sum(h.n_bad_value for h in headers)
    staging_total = totals([e for entries in staging_by_partition.values() for e in entries])
    lake_total = totals([e for entries in lake_by_partition.values() for e in entries])

    problems = []
    if snapshot.n_record is not None and snapshot.n_record != etl_in:
        problems.append(f"the snapshot manifest lists {snapshot.n_record:,} records but ETL read {etl_in:,}")
    if etl_out != staging_total.records:
        problems.append(f"the transform produced {etl_out:,} records but staging holds {staging_total.records:,}")
    for check in partitions:
        name = check.partition or "(unpartitioned)"
        if not staging_by_partition and check.partition == "" and check.datalake.records == 0:
            continue  # a table of 0 rows: its one empty file, written so that every reader opens the lake
        if check.partition not in staging_by_partition:
            problems.append(
                f"data lake partition {name} holds {check.datalake.files} files no staging file accounts for "
                f"(left by an earlier run?): remove them from {storage.join(root, check.partition)}/"
            )
        elif not check.ok:
            problems.append(
                f"partition {name}: staging holds {check.staging.records:,} records, "
                f"the data lake {check.datalake.records:,}"
            )

    result = ValidateResult(
        snapshot=Totals(snapshot.n_file, snapshot.size, snapshot.n_record or 0),
        snapshot_records_known=snapshot.n_record is not None,
        etl_records_in=etl_in,
        etl_records_out=etl_out,
        staging=staging_total,
        datalake=lake_total,
        partitions=partitions,
        target_file_size=config.target_file_size,
        files_judged=sum(max(0, len(entries) - 1) for entries in lake_by_partition.values()),
        files_near_target=share_near_target(
            [[size for size, _ in entries] for entries in lake_by_partition.values()], config.target_file_size
        ),
        bad_values=bad_values,
        problems=tuple(problems),
    )
    ledger.write_validation(result)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ValidationError(
            f"the data lake does not match the snapshot: {shown} (details: {location.s3path_validate_datalake_result})"
        )
    return result
