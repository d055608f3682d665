"""Run many small I/O calls (footers, HEADs) on a thread pool, in input order, reporting progress."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from dbsnaplake.progress import NoProgress, Progress

T = TypeVar("T")
R = TypeVar("R")

IO_THREADS = 32


def map_io(
    function: Callable[[T], R], items: Sequence[T], progress: Progress | None = None, threads: int = IO_THREADS
) -> list[R]:
    """``[function(x) for x in items]`` on ``threads`` threads; the first exception raised is re-raised."""
    progress = progress or NoProgress()
    if len(items) <= 1:
        results = [function(x) for x in items]
        progress.advance(len(items))
        return results
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        futures = [pool.submit(function, x) for x in items]
        results = []
        try:
            for future in futures:
                results.append(future.result())
                progress.advance()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return results
