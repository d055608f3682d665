"""Produce the next items of a stream on a thread while the caller consumes this one.

A compaction task decodes and merges staging rows, then encodes them; an ETL task gathers a partition's sorted rows,
then fingerprints and encodes them. Each step is Arrow or NumPy work that releases the GIL, so running the
producing step on a second thread overlaps it with the consuming one: a task alone on a machine (the last of a
stage, or one big partition) uses two cores instead of one. At most ``depth`` items wait between the two, so memory
grows by that many items only.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()
_PUT_WAIT_SECONDS = 0.1  # how often a producer blocked on a full queue checks whether the consumer left


def read_ahead(items: Iterable[T], depth: int = 2, name: str = "dbsnaplake-read-ahead") -> Generator[T, None, None]:
    """``items``, in order, produced on a thread up to ``depth`` items ahead of the caller. An exception raised while
    producing is raised to the caller at that point of the stream; a caller that stops early (or fails) stops the
    producer at its next item."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def put(item: object) -> bool:
        while not stopped.is_set():
            try:
                buffer.put(item, timeout=_PUT_WAIT_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failure(exc))
            return
        put(_END)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]  # every other item is a T
    finally:
        stopped.set()
        thread.join()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def batches(items: Iterable[T], weight: Callable[[T], int], limit: int) -> Iterator[list[T]]:
    """``items`` in lists of at least ``limit`` total ``weight`` (the last may weigh less): read ahead in batches,
    a stream of many small items (thousands of tiny files) costs a hand-over between threads per batch, not per
    item (each hand-over waits for the other thread to let go of the GIL)."""
    batch: list[T] = []
    total = 0
    for item in items:
        batch.append(item)
        total += weight(item)
        if total >= limit:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch
