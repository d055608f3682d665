"""read_ahead: a stream produced on a thread keeps its order and its errors, stays bounded, and stops with its reader."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from dbsnaplake.read_ahead import read_ahead


def test_items_come_in_order_and_all_of_them() -> None:
    assert list(read_ahead(iter(range(10_000)), depth=3)) == list(range(10_000))
    assert list(read_ahead(iter([]))) == []


def test_a_failure_while_producing_is_raised_where_it_happened_in_the_stream() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("staging file x.parquet is corrupt")

    seen = []
    with pytest.raises(ValueError, match=r"x\.parquet is corrupt"):
        for item in read_ahead(failing()):
            seen.append(item)
    assert seen == [1, 2]


def test_the_producer_stays_at_most_depth_items_ahead_and_stops_when_the_reader_leaves() -> None:
    produced: list[int] = []

    def counting() -> Iterator[int]:
        for i in range(1_000):
            produced.append(i)
            yield i

    with contextlib.closing(read_ahead(counting(), depth=2)) as ahead:
        assert next(ahead) == 0
        time.sleep(0.3)  # time for the producer to run ahead as far as it may
        assert len(produced) <= 1 + 2 + 1  # the one read, the queue's two, the one waiting to be queued
    assert not any(t.name == "dbsnaplake-read-ahead" for t in threading.enumerate())
    assert len(produced) <= 4  # nothing more was produced once the reader left


def test_a_failing_consumer_does_not_leave_the_thread_running() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    with pytest.raises(RuntimeError), contextlib.closing(read_ahead(endless())) as ahead:
        for item in ahead:
            if item == 5:
                raise RuntimeError("the writer failed")
    assert not any(t.name == "dbsnaplake-read-ahead" for t in threading.enumerate())


def test_batches_weigh_at_least_the_limit_but_the_last() -> None:
    from dbsnaplake.read_ahead import batches

    sizes = [3, 1, 1, 5, 2, 2, 1]
    made = list(batches(sizes, lambda size: size, limit=4))
    assert made == [[3, 1], [1, 5], [2, 2], [1]]
    assert list(batches([], lambda size: size, limit=4)) == []
