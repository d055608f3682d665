"""Where group work runs: any ``concurrent.futures.Executor``. Inline for tests and debugging, a process pool
by default. Workers are top-level functions from plain, picklable data to plain data."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")
EXECUTORS = ("process", "inline")


class InlineExecutor(Executor):
    """Runs each task at once, in this process: tracebacks and breakpoints work as usual."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def make_executor(kind: str, workers: int) -> Executor:
    """``"process"``: a pool of ``workers`` fresh processes (spawned, not forked: safe with Arrow's threads)."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "process":
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    raise ConfigError(f"unknown executor {kind!r}: use one of {', '.join(EXECUTORS)}")
