"""Pure bin packing: sizes in, groups of indices out. No storage calls here."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence


def pack_in_order(sizes: Sequence[int], max_size: int) -> list[list[int]]:
    """Split items, in order, into groups of at most ``max_size`` bytes (next-fit).

    Keeping the order keeps neighbouring files together (exports are usually ordered by key or time), so a
    group touches few partitions. A single item bigger than ``max_size`` forms a group of its own.

    >>> pack_in_order([5, 5, 5, 20, 1], max_size=10)
    [[0, 1], [2], [3], [4]]
    """
    if max_size <= 0:
        raise ValueError(f"max_size must be positive, got {max_size}")
    groups: list[list[int]] = []
    current: list[int] = []
    current_size = 0
    for index, size in enumerate(sizes):
        if current and current_size + size > max_size:
            groups.append(current)
            current, current_size = [], 0
        current.append(index)
        current_size += size
    if current:
        groups.append(current)
    return groups


def split_evenly(sizes: Sequence[int], max_size: int) -> list[list[int]]:
    """Split items, in order, into the fewest groups of about equal total size with each near ``max_size``.

    Used for compaction: a partition whose files sum to at most ``max_size`` stays one group; a bigger one is
    cut into ``ceil(total / max_size)`` runs of about ``total / n`` bytes each.

    >>> split_evenly([4, 4, 4, 4], max_size=10)
    [[0, 1], [2, 3]]
    """
    if max_size <= 0:
        raise ValueError(f"max_size must be positive, got {max_size}")
    total = sum(sizes)
    n_groups = min(max(1, math.ceil(total / max_size)), len(sizes))
    if n_groups <= 1:
        return [list(range(len(sizes)))] if sizes else []
    groups: list[list[int]] = [[]]
    cumulative = 0
    for index, size in enumerate(sizes):
        # Start a new group when this item's midpoint passes the next cut.
        boundary = total * len(groups) / n_groups
        must_cut = len(sizes) - index <= n_groups - len(groups)
        if groups[-1] and len(groups) < n_groups and (must_cut or cumulative + size / 2 > boundary):
            groups.append([])
        groups[-1].append(index)
        cumulative += size
    return groups


def balance(sizes: Sequence[int], n_bins: int) -> list[list[int]]:
    """Spread items over at most ``n_bins`` bins of about equal total size (largest first, each into the lightest
    bin); each bin's items in input order, empty bins left out.

    >>> balance([5, 1, 4, 2], 2)
    [[0, 1], [2, 3]]
    """
    if n_bins <= 0:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    bins: list[list[int]] = [[] for _ in range(min(n_bins, len(sizes)))]
    lightest = [(0, b) for b in range(len(bins))]
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        total, b = heapq.heappop(lightest)
        bins[b].append(index)
        heapq.heappush(lightest, (total + sizes[index], b))
    return [sorted(members) for members in bins if members]
