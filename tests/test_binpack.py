"""Bin packing, in order: ``pack_in_order`` (snapshot files → ETL groups, next-fit) and ``split_evenly``
(a partition's staging files → compaction groups of about equal size)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dbsnaplake.binpack import pack_in_order, split_evenly

sizes_lists = st.lists(st.integers(min_value=0, max_value=1_000), max_size=40)
max_sizes = st.integers(min_value=1, max_value=1_500)


def flatten(groups: list[list[int]]) -> list[int]:
    return [index for group in groups for index in group]


def group_sizes(sizes: list[int], groups: list[list[int]]) -> list[int]:
    return [sum(sizes[i] for i in group) for group in groups]


# ---- pack_in_order ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "max_size", "groups"),
    [
        ([], 10, []),
        ([3], 10, [[0]]),
        ([5, 5, 5, 20, 1], 10, [[0, 1], [2], [3], [4]]),
        ([10, 10, 10], 10, [[0], [1], [2]]),
        ([1, 2, 3, 4], 10, [[0, 1, 2, 3]]),
        ([1, 2, 3, 4, 1], 10, [[0, 1, 2, 3], [4]]),
        ([11], 10, [[0]]),
        ([11, 1, 11], 10, [[0], [1], [2]]),
        ([0, 0, 10, 0], 10, [[0, 1, 2, 3]]),
        ([6, 4, 6, 4], 10, [[0, 1], [2, 3]]),
        ([4, 6, 1, 9, 9], 10, [[0, 1], [2, 3], [4]]),
    ],
)
def test_pack_in_order(sizes: list[int], max_size: int, groups: list[list[int]]) -> None:
    assert pack_in_order(sizes, max_size) == groups


@given(sizes_lists, max_sizes)
def test_pack_in_order_properties(sizes: list[int], max_size: int) -> None:
    groups = pack_in_order(sizes, max_size)

    assert flatten(groups) == list(range(len(sizes))), "each index once, in order"
    assert all(groups), "no empty group"
    for group, total in zip(groups, group_sizes(sizes, groups), strict=True):
        assert total <= max_size or len(group) == 1, f"group {group} holds {total} > {max_size}"
    for previous, group in itertools.pairwise(groups):
        # next-fit: a group is only closed when its next item would not have fitted
        assert sum(sizes[i] for i in previous) + sizes[group[0]] > max_size


@pytest.mark.parametrize("max_size", [0, -1])
def test_pack_in_order_refuses_a_non_positive_size(max_size: int) -> None:
    with pytest.raises(ValueError, match="max_size must be positive"):
        pack_in_order([1, 2], max_size)


# ---- split_evenly -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "max_size", "groups"),
    [
        ([], 10, []),
        ([7], 10, [[0]]),
        ([25], 10, [[0]]),
        ([4, 4, 4, 4], 10, [[0, 1], [2, 3]]),
        ([4, 4, 4, 4], 16, [[0, 1, 2, 3]]),
        ([1] * 10, 4, [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]),
        ([5, 5, 5, 5, 5, 5], 10, [[0, 1], [2, 3], [4, 5]]),
        ([2, 2, 2, 2, 2, 2, 2, 2, 2], 10, [[0, 1, 2, 3, 4], [5, 6, 7, 8]]),
        ([9, 1, 1, 9], 10, [[0, 1], [2, 3]]),
        ([0, 0, 0], 10, [[0, 1, 2]]),
    ],
)
def test_split_evenly(sizes: list[int], max_size: int, groups: list[list[int]]) -> None:
    assert split_evenly(sizes, max_size) == groups


@given(sizes_lists, max_sizes)
def test_split_evenly_is_an_ordered_partition(sizes: list[int], max_size: int) -> None:
    groups = split_evenly(sizes, max_size)
    wanted = max(1, math.ceil(sum(sizes) / max_size))

    assert flatten(groups) == list(range(len(sizes))), "each index once, in order"
    assert all(groups), "no empty group"
    assert len(groups) <= wanted
    if sum(sizes) <= max_size:
        assert len(groups) == (1 if sizes else 0), "a partition that fits stays one group"


@given(st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=200), max_sizes)
def test_split_evenly_many_small_files_give_equal_groups(sizes: list[int], max_size: int) -> None:
    """Small files: exactly ceil(total / max) groups, each within one file's size of total / n."""
    groups = split_evenly(sizes, max_size)
    n = max(1, math.ceil(sum(sizes) / max_size))
    if len(sizes) >= 10 * n:
        assert len(groups) == n
        share = sum(sizes) / n
        for total in group_sizes(sizes, groups):
            assert abs(total - share) <= max(sizes), (group_sizes(sizes, groups), share)


@given(sizes_lists, max_sizes)
@example([1, 9, 9], 9)
@example([1, 1, 1, 100], 30)
def test_split_evenly_gives_ceil_total_over_max_groups(sizes: list[int], max_size: int) -> None:
    groups = split_evenly(sizes, max_size)
    wanted = max(1, math.ceil(sum(sizes) / max_size))
    assert len(groups) == min(wanted, len(sizes)), (sizes, max_size, groups)


@pytest.mark.parametrize("max_size", [0, -5])
def test_split_evenly_refuses_a_non_positive_size(max_size: int) -> None:
    with pytest.raises(ValueError, match="max_size must be positive"):
        split_evenly([1, 2], max_size)
