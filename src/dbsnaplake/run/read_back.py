"""Validation's read-back of the data lake, over the run's executor.

Every core (or every machine of a Dask cluster) decodes and fingerprints its share of the lake's files, instead of
the one process that validates. It starts early: each data-lake file is read back as soon as its compaction worker
has published it (the worker reports it through the run's report queue; where there is none, a Dask cluster, as
soon as its group is done), on workers the end of the compaction stage leaves idle (the last groups of a stage
leave cores with nothing to do, while the biggest group is still writing its files). A group that fails writes its
files again when it is rerun: what was read of them early is dropped. Validation then takes the early results for
the files its listing shows as they were written (same path, same size), and reads the others. The proof is the
same: every file the listing shows is read back in full, after it was written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait

from dbsnaplake.binpack import balance
from dbsnaplake.progress import Progress
from dbsnaplake.records import CompactResult
from dbsnaplake.run.executors import InlineExecutor
from dbsnaplake.run.groups import backoff_seconds, describe, is_retried
from dbsnaplake.stages.validate import READ_BACK_TASK, LakeFile, ReadBack, read_back_files, read_back_here

log = logging.getLogger(__name__)

READ_BACK_TASKS_PER_WORKER = 2
"""The read-back of files not read early is split into this many tasks per worker, of about equal bytes."""

Task = tuple[list[int], int]
"""A read-back task: the files' positions in the listing, and how many times it failed before."""


class ReadBackOver:
    """Reads data-lake files back on ``executor``: early, as compaction publishes them (the
    :class:`~dbsnaplake.run.groups.GroupFollower` of the compaction stage), and the rest when validation asks (a
    :data:`~dbsnaplake.stages.validate.ReadBackFiles`). A task whose worker died (killed, out of memory) or that met
    a passing storage error is run again, up to ``retries`` times, as a group of the other stages is. Inline,
    everything is read in this process when validation asks."""

    def __init__(self, executor: Executor, workers: int, retries: int = 0) -> None:
        self._executor, self._workers, self._retries = executor, workers, retries
        self._inline = isinstance(executor, InlineExecutor)
        self._early: dict[LakeFile, Future[list[ReadBack]]] = {}
        self._published: dict[int, list[LakeFile]] = {}
        """The files each running compaction group published so far."""

    def published(self, group: int, uri: str, size: int) -> None:
        """Start reading back a file a compaction worker has just published, its group still running."""
        file = LakeFile(uri, size)
        self._published.setdefault(group, []).append(file)
        self._start(file)

    def failed(self, group: int) -> None:
        """A compaction group failed: a rerun writes its files again, so what was read of them early is dropped."""
        for file in self._published.pop(group, []):
            future = self._early.pop(file, None)
            if future is not None:
                future.cancel()

    def finished(self, result: CompactResult) -> None:
        """A compaction group is done: start reading back those of its files not started yet (all of them where
        workers cannot report a file as they publish it)."""
        self._published.pop(result.group, None)
        for written in result.files:
            file = LakeFile(written.uri, written.size)
            if file not in self._early and not self._start(file):
                return

    def _start(self, file: LakeFile) -> bool:
        """Submit one file's read-back (a task of its own: it queues behind the stage's groups not started yet, so
        it only takes a worker the stage leaves idle); ``False`` when the executor refuses it."""
        if self._inline:
            return False
        try:
            previous, self._early[file] = self._early.get(file), self._executor.submit(read_back_files, [file])
        except Exception as exc:  # an early start only saves time: validation reads what was not started
            log.debug("read-back of %s not started early: %s", file.uri, describe(exc))
            return False
        if previous is not None:  # published again (the same path and size): the older read is of the older file
            previous.cancel()
        log.debug("read-back of %s started early", file.uri)
        return True

    def __call__(self, files: Sequence[LakeFile], progress: Progress) -> list[ReadBack]:
        early, self._early = self._early, {}
        if self._inline or (len(files) < 2 and not early):
            return read_back_here(files, progress)
        progress.start(READ_BACK_TASK, len(files))
        futures: dict[Future[list[ReadBack]], Task] = {}
        rest: list[int] = []  # the files not read early
        for index, file in enumerate(files):
            future = early.pop(file, None)
            if future is None:
                rest.append(index)
            else:
                futures[future] = ([index], 0)
        for future in early.values():  # files the listing does not show as written: read what it shows instead
            future.cancel()
        tasks = balance([files[i].size for i in rest], self._workers * READ_BACK_TASKS_PER_WORKER) if rest else []
        futures.update((self._submit(files, task), (task, 0)) for task in ([rest[i] for i in t] for t in tasks))
        return self._collect(files, futures, progress)

    def _submit(self, files: Sequence[LakeFile], task: list[int]) -> Future[list[ReadBack]]:
        return self._executor.submit(read_back_files, [files[i] for i in task])

    def _collect(
        self, files: Sequence[LakeFile], futures: dict[Future[list[ReadBack]], Task], progress: Progress
    ) -> list[ReadBack]:
        read: dict[int, ReadBack] = {}
        while futures:
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            retry: list[Task] = []
            for future in finished:
                task, failures = futures.pop(future)
                failure = future.exception()
                if failure is None:
                    read.update(zip(task, future.result(), strict=True))
                    progress.advance(len(task))
                elif failures < self._retries and is_retried(failure):
                    log.debug("read-back of %d lake files failed, retrying: %s", len(task), describe(failure))
                    retry.append((task, failures + 1))
                else:
                    raise failure
            if retry:
                time.sleep(backoff_seconds(max(failures for _, failures in retry)))
                futures.update((self._submit(files, task), (task, failures)) for task, failures in retry)
        return [read[i] for i in range(len(files))]
