"""How stages report progress. The library reports to a ``Progress``; only the CLI draws bars or prints lines.

A task counts steps (groups, files) and, where the work has a size, the bytes and rows processed: group workers
report after each file they finish (see :class:`Report`), so a display can show a rate and the time left.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol


class Progress(Protocol):
    """Where a stage reports how far it got: tasks with a number of steps, data processed, notes for a person."""

    def start(self, task: str, total: int, done: int = 0, total_bytes: int = 0, done_bytes: int = 0) -> None:
        """A new task of ``total`` steps begins (the previous one, if any, is finished); ``done`` of them (and
        ``done_bytes``) were done by an earlier run. ``total_bytes``, when known, allows a rate and a time left."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current task are done."""

    def flow(self, files: int = 0, size: int = 0, rows: int = 0) -> None:
        """The current task processed ``files`` more files holding ``size`` bytes and ``rows`` rows (negative after
        a group failed and will be retried: its work is taken back)."""

    def note(self, message: str) -> None:
        """A line worth showing a person (how a default was chosen, what was skipped)."""


class NoProgress:
    """Reports nowhere: the default for library calls."""

    def start(self, task: str, total: int, done: int = 0, total_bytes: int = 0, done_bytes: int = 0) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def flow(self, files: int = 0, size: int = 0, rows: int = 0) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass(frozen=True)
class Reported:
    """One message a group worker puts on the report queue: data it processed, or a file it published."""

    group: int
    files: int = 0
    size: int = 0
    rows: int = 0
    published: tuple[str, int] | None = None
    """``(uri, bytes)`` of a file the worker has just published whole: it can be read from now on."""


class Report:
    """What a group worker calls after each file it finished: ``report(files, size, rows)``, and after each output
    file it published: ``report.published(uri, size)``. It puts a :class:`Reported` on a queue the orchestrator
    drains (a multiprocessing manager's queue for a process pool, a plain queue in-line). Picklable, so it travels
    to worker processes with the task.

    Progress must never cost a group its work: if the queue's process died (killed), the report is dropped, both
    when the worker receives the task (the queue's proxy cannot reconnect) and when it puts."""

    def __init__(self, queue: Any, group: int) -> None:
        self._queue, self._group = queue, group

    def __call__(self, files: int = 0, size: int = 0, rows: int = 0) -> None:
        self._put(Reported(self._group, files, size, rows))

    def published(self, uri: str, size: int) -> None:
        """The worker published ``uri`` (``size`` bytes), whole: what follows the stage may read it now."""
        self._put(Reported(self._group, published=(uri, size)))

    def _put(self, message: Reported) -> None:
        if self._queue is None:
            return
        with contextlib.suppress(Exception):  # the queue's process died (killed): progress is lost, the work is not
            self._queue.put(message)

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild, args = self._queue.__reduce__()  # a manager's proxy reconnects when it is unpickled: defer that
        return _rebuild_report, (rebuild, args, self._group)


def _rebuild_report(rebuild: Any, args: tuple[Any, ...], group: int) -> Report:
    try:
        queue = rebuild(*args)
    except Exception:  # the manager is gone: report nothing
        queue = None
    return Report(queue, group)
