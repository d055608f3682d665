"""Estimating what a run will make from a sample of the snapshot: pure arithmetic, no I/O.

The number of distinct partitions is estimated with the GEE estimator (Charikar, Chaudhuri, Motwani, Narasayya,
"Towards estimation error guarantees for distinct values", PODS 2000): ``sqrt(N / n) * f1 + sum(f_j, j >= 2)``,
where ``n`` rows were sampled out of ``N`` and ``f_j`` partitions were seen exactly ``j`` times. A partition key
seen once per row (a unique key) scales with the data; one seen many times (a year) does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def distinct_values(counts: Sequence[int], sample_rows: int, total_rows: int) -> int:
    """Estimated distinct values in ``total_rows`` rows, from the rows per value seen in ``sample_rows`` rows."""
    if not counts or sample_rows <= 0:
        return 0
    if total_rows <= sample_rows:
        return len(counts)
    seen_once = sum(1 for c in counts if c == 1)
    seen_more = len(counts) - seen_once
    return min(total_rows, max(len(counts), round(math.sqrt(total_rows / sample_rows) * seen_once + seen_more)))


def staging_files(partitions: int, groups: int, partitions_per_file: float, files_per_group: float) -> int:
    """Each ETL group writes one staging file per partition its files touch."""
    per_group = min(partitions, max(1.0, partitions_per_file * files_per_group))
    return max(1, round(groups * per_group))


def lake_files(partitions: int, lake_bytes: int, target_file_size: int) -> int:
    """Each partition makes full files of the target size and one remainder."""
    return max(partitions, partitions + lake_bytes // max(1, target_file_size))
