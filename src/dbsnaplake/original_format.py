"""The original dbsnaplake's (0.3.x) keys in ``validate-datalake-result.json``, derived from our record.

The original wrote ``dataclasses.asdict(ValidateDatalakeResult)``: ``before_n_files``, ``before_total_size``,
``before_total_size_4_human``, ``before_total_n_record`` (the snapshot), ``after_n_files``, ``after_total_size``,
``after_total_size_4_human``, ``after_total_n_record`` (the data lake), ``n_partition`` and ``partitions``, a list
of ``{data, n_files, total_size, total_size_4_human, total_n_record}`` (``data``: the partition's values by key).
Scripts written against that file keep working on ours: :func:`validation_dict` is our
:class:`~dbsnaplake.records.ValidateResult` with those keys added, each partition's next to our
:class:`~dbsnaplake.records.PartitionCheck` fields. The record stays the source: the keys are derived when the file
is written and ignored when it is read (``from_dict`` reads only the record's own fields).

Where ours differs: ``before_total_n_record`` is the records ETL read when the snapshot manifest does not count
every file (the original wrote null), and a partition value of Hive's default partition is null in ``data``.
"""

from __future__ import annotations

from typing import Any

from dbsnaplake.frames.partitioning import parse_partition_path
from dbsnaplake.records import PartitionCheck, Totals, ValidateResult

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def repr_data_size(size: int, precision: int = 2) -> str:
    """A size as the original shows it (``dbsnaplake.utils.repr_data_size``): ``1536`` → ``"1.50 KB"``, ``100`` →
    ``"100 B"``; powers of 1024, and only the last division's remainder counts toward the decimals, as there."""
    if size < 1024:
        return f"{size} B"
    index, mod = 0, 0
    while True:
        index += 1
        size, mod = divmod(size, 1024)
        if size < 1024:
            break
    return f"{size + mod / 1024.0:.{precision}f} {_UNITS[index]}"


def validation_dict(result: ValidateResult) -> dict[str, Any]:
    """What ``validate-datalake-result.json`` holds: the record's fields and the original's keys."""
    before_records = result.snapshot.records if result.snapshot_records_known else result.etl_records_in
    data = result.to_dict()
    data.update(
        {
            **_totals("before", result.snapshot, before_records),
            **_totals("after", result.datalake, result.datalake.records),
            "n_partition": len(result.partitions),
            "partitions": [
                {**ours, **_partition(check)} for ours, check in zip(data["partitions"], result.partitions, strict=True)
            ],
        }
    )
    return data


def _totals(side: str, totals: Totals, n_record: int) -> dict[str, Any]:
    return {
        f"{side}_n_files": totals.files,
        f"{side}_total_size": totals.bytes,
        f"{side}_total_size_4_human": repr_data_size(totals.bytes),
        f"{side}_total_n_record": n_record,
    }


def _partition(check: PartitionCheck) -> dict[str, Any]:
    """The original's ``Partition``: its values (``None`` for Hive's default partition), the data-lake side."""
    return {
        "data": parse_partition_path(check.partition),
        "n_files": check.datalake.files,
        "total_size": check.datalake.bytes,
        "total_size_4_human": repr_data_size(check.datalake.bytes),
        "total_n_record": check.datalake.records,
    }
