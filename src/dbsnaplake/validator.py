"""Stage 5, validate: compare the data lake with the snapshot, in total and per partition.

Three layers are compared, all from metadata (manifests and Parquet footers, never the data):
the snapshot manifest's records against what ETL read; what ETL wrote (per partition) against what the data
lake's files hold (per partition). Any mismatch, or a data-lake file no partition accounts for, is a problem:
the result is written to ``manifests/validate-datalake-result.json`` and :class:`ValidationError` is raised.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from . import storage
from .compaction_planner import read_staging_manifests, require_plan
from .concurrency import map_io
from .config import PipelineConfig
from .errors import ValidationError
from .etl import PARTITION
from .manifest import N_RECORD, SIZE, read_manifest
from .progress import NoProgress, Progress
from .readers import read_parquet_footer
from .units import format_size


@dataclass(frozen=True)
class Totals:
    files: int = 0
    bytes: int = 0
    records: int = 0


@dataclass(frozen=True)
class PartitionCheck:
    partition: str
    staging: Totals
    datalake: Totals

    @property
    def ok(self) -> bool:
        return self.staging.records == self.datalake.records


@dataclass(frozen=True)
class ValidationResult:
    snapshot: Totals
    snapshot_records_known: bool
    etl_records_in: int
    etl_records_out: int
    staging: Totals
    datalake: Totals
    partitions: tuple[PartitionCheck, ...]
    target_file_size: int
    files_judged: int
    """Data-lake files that are not their partition's remainder (smallest file)."""
    files_near_target: float
    """Share of data-lake files within ±10 % of the target, each partition's smallest file (its remainder) excepted."""
    bad_values: int = 0
    """Values that did not parse as their source type and were stored as null (``--on-bad-value null``)."""
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        data = asdict(self)
        data["ok"] = self.ok
        return json.dumps(data, indent=2)

    def __str__(self) -> str:
        verdict = "OK" if self.ok else f"FAILED ({len(self.problems)} problems)"
        return (
            f"validation {verdict}: snapshot {self.snapshot.files:,} files / {format_size(self.snapshot.bytes)} / "
            f"{self.etl_records_in:,} records → data lake {self.datalake.files:,} files / "
            f"{format_size(self.datalake.bytes)} / {self.datalake.records:,} records in "
            f"{len(self.partitions):,} partitions"
        )


def share_near_target(sizes_by_partition: list[list[int]], target: int) -> float:
    """Share of files within ±10 % of ``target``, leaving out each partition's smallest file (its remainder)."""
    judged = [size for sizes in sizes_by_partition for size in sorted(sizes)[1:]]
    if not judged:
        return 1.0
    return sum(1 for size in judged if 0.9 * target <= size <= 1.1 * target) / len(judged)


def _partition_of(uri: str, root: str) -> str:
    relative = uri[len(root) :]
    return relative.rsplit("/", 1)[0] if "/" in relative else ""


def validate_datalake(config: PipelineConfig, progress: Progress | None = None) -> ValidationResult:
    progress = progress or NoProgress()
    location = config.location
    snapshot = read_manifest(config.manifest_uri)
    staging_manifests = read_staging_manifests(config, progress)

    staging_by_partition: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for m in staging_manifests:
        for partition, size, n in zip(m.column(PARTITION), m.column(SIZE), m.column(N_RECORD), strict=True):
            staging_by_partition[partition].append((size, n))

    root = require_plan(config).version_root
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
    etl_in = sum(int(m.extra["n_record_in"]) for m in staging_manifests)
    etl_out = sum(int(m.extra["n_record_out"]) for m in staging_manifests)
    bad_values = sum(int(m.extra.get("n_bad_value", 0)) for m in staging_manifests)
    staging_total = totals([e for entries in staging_by_partition.values() for e in entries])
    lake_total = totals([e for entries in lake_by_partition.values() for e in entries])

    problems = []
    if snapshot.n_record is not None and snapshot.n_record != etl_in:
        problems.append(f"the snapshot manifest lists {snapshot.n_record:,} records but ETL read {etl_in:,}")
    if etl_out != staging_total.records:
        problems.append(f"the transform produced {etl_out:,} records but staging holds {staging_total.records:,}")
    for check in partitions:
        name = check.partition or "(unpartitioned)"
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

    result = ValidationResult(
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
    storage.write_bytes(location.s3path_validate_datalake_result, result.to_json().encode())
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ValidationError(
            f"the data lake does not match the snapshot: {shown} (details: {location.s3path_validate_datalake_result})"
        )
    return result
