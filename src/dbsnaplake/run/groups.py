"""Run one worker call per group manifest over an executor: retry failures with backoff, keep what succeeded,
and stop with one summary naming every group that kept failing.

A failure is retried when it may pass on a second try: a worker process that died, an S3 or network error, an
unexpected exception. Bad input (:class:`SnapshotError`, :class:`TransformError`, :class:`ConfigError`) fails
the same way every time, so it is not retried. Every group that fails for good gets a ``failed-<n>.json``
marker with its last error, which ``dbsnaplake status`` shows.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from queue import Empty
from typing import Any, Generic, Protocol, TypeVar

from dbsnaplake.config.settings import PipelineConfig
from dbsnaplake.errors import ConfigError, DbSnapLakeError, RecordError, SnapshotError, StageError, TransformError
from dbsnaplake.layout import parse_group_manifest
from dbsnaplake.ledger import Ledger, Stage
from dbsnaplake.progress import Progress, Report, Reported
from dbsnaplake.run.executors import report_queue
from dbsnaplake.storage import StorageError

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)
log = logging.getLogger(__name__)
NOT_RETRIED = (SnapshotError, TransformError, ConfigError, RecordError)
BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
SHOWN_FAILURES = 10
WAKE_SECONDS = 0.5


def backoff_seconds(attempt: int) -> float:
    """Exponential with full jitter: ``attempt`` 1 waits up to 1 s, 2 up to 2 s, 3 up to 4 s ... (at most 30 s)."""
    return float(random.uniform(0.5, 1.0) * min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** (attempt - 1)))


def describe(exc: BaseException) -> str:
    if isinstance(exc, BrokenProcessPool):
        return "the worker process died (killed, or out of memory) while running this group"
    if isinstance(exc, DbSnapLakeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def is_retried(exc: BaseException) -> bool:
    """A failure that may pass on a second try: not bad input, not a permanent storage refusal."""
    if isinstance(exc, StorageError):
        return exc.transient
    return not isinstance(exc, NOT_RETRIED)


class GroupFollower(Protocol[R_contra]):
    """What follows a stage's groups as they go (validation's read-back follows compaction): told of each file a
    group's worker published (where the executor offers a report queue), of a group that failed (a rerun writes
    its files again), and of each group's result."""

    def published(self, group: int, uri: str, size: int) -> None: ...

    def failed(self, group: int) -> None: ...

    def finished(self, result: R_contra) -> None: ...


@dataclass(frozen=True)
class Work:
    """How much a stage has to do: its groups and their bytes, and what an earlier run already did."""

    total_bytes: int = 0
    done_groups: int = 0
    done_bytes: int = 0


def run_groups(
    executor: Executor,
    worker: Callable[..., R],
    config: PipelineConfig,
    group_manifests: Sequence[str],
    progress: Progress,
    task: str,
    stage: Stage,
    work: Work = Work(),
    follower: GroupFollower[R] | None = None,
) -> list[R]:
    """Run ``worker(uri, config, report=...)`` for every group manifest; return the results of all, or raise after
    the other groups finished, naming each group that failed ``config.retries + 1`` times. Workers report each file
    they finish (see :class:`dbsnaplake.progress.Report`) where the executor offers a queue for it. ``follower``
    hears of each file published, each group failed and each result, as they come (what follows may start on
    them)."""
    ledger = Ledger(config.location)
    progress.start(
        task, work.done_groups + len(group_manifests), work.done_groups, work.total_bytes, work.done_bytes
    )
    reports = _Reports(report_queue(executor), progress, follower)
    results: list[R] = []
    failures: dict[str, BaseException] = {}
    attempts = dict.fromkeys(group_manifests, 0)
    pending = list(group_manifests)
    round_number = 0
    while pending:
        if round_number:
            pause = backoff_seconds(round_number)
            progress.note(f"{task}: retrying {len(pending)} failed group(s) in {pause:.1f}s (round {round_number + 1})")
            time.sleep(pause)
        retry = []
        for uri, outcome in _run_round(executor, worker, config, pending, reports):
            attempts[uri] += 1
            reports.drain()
            if isinstance(outcome, BaseException):
                log.debug("%s: group %s failed (attempt %d): %s", task, uri, attempts[uri], describe(outcome))
                reports.take_back(uri)
                failures[uri] = outcome
                if attempts[uri] <= config.retries and is_retried(outcome):
                    retry.append(uri)
                else:
                    ledger.mark_failed(stage, parse_group_manifest(uri).group, describe(outcome), attempts[uri])
            else:
                log.debug("%s: group %s done (attempt %d)", task, uri, attempts[uri])
                failures.pop(uri, None)
                results.append(outcome)
                reports.finished(uri, outcome)
                if follower is not None:
                    follower.finished(outcome)
                progress.advance()
        pending, round_number = retry, round_number + 1
    if failures:
        raise _summary(stage, failures, attempts, len(group_manifests))
    return results


class _Reports(Generic[R]):
    """The files workers report as they finish them, passed on to the progress display, and the files they
    publish, passed on to the follower; without a queue (a Dask cluster), each group's data is counted when it
    finishes."""

    def __init__(self, queue: Any | None, progress: Progress, follower: GroupFollower[R] | None = None) -> None:
        self._queue, self._progress, self._follower = queue, progress, follower
        self._by_group: dict[int, list[int]] = {}

    def for_group(self, uri: str) -> dict[str, Report]:
        if self._queue is None:
            return {}
        return {"report": Report(self._queue, parse_group_manifest(uri).group)}

    def drain(self) -> None:
        if self._queue is None:
            return
        while True:
            try:
                message: Reported = self._queue.get_nowait()
            except Empty:
                return
            except (EOFError, OSError):  # the reporting process died (killed): count groups as they finish instead
                log.debug("progress reports lost: the process holding their queue is gone")
                self._queue = None
                return
            if message.published is not None:
                if self._follower is not None:
                    self._follower.published(message.group, *message.published)
                continue
            seen = self._by_group.setdefault(message.group, [0, 0, 0])
            seen[0], seen[1], seen[2] = seen[0] + message.files, seen[1] + message.size, seen[2] + message.rows
            self._progress.flow(message.files, message.size, message.rows)

    def take_back(self, uri: str) -> None:
        """A failed group will run again: what it reported is counted again then, and the files it published are
        written again."""
        group = parse_group_manifest(uri).group
        files, size, rows = self._by_group.pop(group, (0, 0, 0))
        if files or size or rows:
            self._progress.flow(-files, -size, -rows)
        if self._follower is not None:
            self._follower.failed(group)

    def finished(self, uri: str, result: Any) -> None:
        processed = getattr(result, "processed", None)  # EtlResult, CompactResult: (files, bytes, rows) read
        if self._queue is None and processed is not None:  # nothing was reported per file: count the group now
            self._progress.flow(*processed)


def _run_round(
    executor: Executor, worker: Callable[..., R], config: PipelineConfig, uris: list[str], reports: _Reports[R]
) -> Iterator[tuple[str, R | BaseException]]:
    """Submit every group; yield ``(uri, result or exception)`` as each finishes (passing on reports meanwhile)."""
    futures: dict[Future[R], str] = {
        executor.submit(worker, uri, config, **reports.for_group(uri)): uri for uri in uris
    }
    pending = set(futures)
    try:
        while pending:
            # short waits, not one long one: Ctrl-C is only acted on when this thread runs Python code
            done, pending = wait(pending, timeout=WAKE_SECONDS, return_when=FIRST_COMPLETED)
            reports.drain()
            for future in done:
                exc = future.exception()
                yield futures[future], exc if exc is not None else future.result()
    finally:
        for future in futures:  # on Ctrl-C or an error: do not start what has not started
            future.cancel()


def _summary(stage: str, failures: dict[str, BaseException], attempts: dict[str, int], total: int) -> Exception:
    if len(failures) == 1:
        ((uri, exc),) = failures.items()
        message = f"{describe(exc)} [group manifest: {uri}; {attempts[uri]} attempt(s)]"
    else:
        lines = [f"  {uri} ({attempts[uri]} attempts): {describe(exc)}" for uri, exc in failures.items()]
        more = len(lines) - SHOWN_FAILURES
        message = (
            f"{stage}: {len(failures)} of {total} groups failed; the other groups' work is kept. Fix the cause "
            "and rerun the same command to resume ('dbsnaplake status' lists the errors):\n"
            + "\n".join(lines[:SHOWN_FAILURES])
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
    kinds = {type(exc) for exc in failures.values()}
    kind = kinds.pop() if len(kinds) == 1 else StageError
    return kind(message) if issubclass(kind, DbSnapLakeError) else StageError(message)
