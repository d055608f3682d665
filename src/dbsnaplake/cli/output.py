"""What the command prints: results on stdout, progress bars and notes on stderr."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from dbsnaplake.progress import NoProgress
from dbsnaplake.units import format_size

err_console = Console(stderr=True)
console = Console(markup=False)  # results print as they are: paths and values may hold [brackets]


def _rate(size: float, seconds: float) -> str:
    return f"{format_size(size / seconds)}/s" if seconds > 0 and size > 0 else "-"


class _Task:
    """One task's counts, as a display shows them."""

    def __init__(self, name: str, total: int, done: int, total_bytes: int, done_bytes: int) -> None:
        self.name, self.total, self.done = name, total, done
        self.total_bytes, self.size, self.files, self.rows = total_bytes, done_bytes, 0, 0
        self.started = time.monotonic()
        self.resumed_bytes = done_bytes  # done by an earlier run: not part of this run's rate

    def rate_and_eta(self) -> tuple[str, str]:
        seconds = time.monotonic() - self.started
        moved = self.size - self.resumed_bytes
        if seconds <= 0 or moved <= 0:
            return "-", "-"
        left = max(0, self.total_bytes - self.size) * seconds / moved if self.total_bytes else None
        return _rate(moved, seconds), "-" if left is None else f"{left:.0f}s"

    def line(self) -> str:
        parts = [f"{self.done:,}/{self.total:,}"]
        if self.total_bytes:
            parts.append(f"{format_size(self.size)}/{format_size(self.total_bytes)}")
        if self.rows:
            parts.append(f"{self.rows:,} rows")
        rate, eta = self.rate_and_eta()
        if self.total_bytes:
            parts.append(f"{rate}, ETA {eta}")
        return f"{self.name}: " + ", ".join(parts)


class RichProgress:
    """Progress on a terminal: a bar per task on stderr, each task's bar left in place (in order) when the next one
    starts, with bytes and rows done, the rate and the time left where the task's size is known."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._task_id: Any = None
        self._task: _Task | None = None

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def start(self, task: str, total: int, done: int = 0, total_bytes: int = 0, done_bytes: int = 0) -> None:
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichBar

        self._stop()
        self._task = _Task(task, total, done, total_bytes, done_bytes)
        self._bar = RichBar(
            TextColumn("{task.description:<36}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self._bar.start()
        self._task_id = self._bar.add_task(task, total=max(total, 1), completed=done if total else 1, counts="")
        self._refresh()

    def _refresh(self) -> None:
        if self._bar is None or self._task is None:
            return
        task = self._task
        counts = task.line().split(": ", 1)[1]
        if task.total_bytes:  # the bar moves with the bytes processed, file by file, not only group by group
            self._bar.update(self._task_id, total=task.total_bytes, completed=task.size, counts=counts)
        else:
            self._bar.update(self._task_id, completed=task.done, counts=counts)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._task.done += steps
            self._refresh()

    def flow(self, files: int = 0, size: int = 0, rows: int = 0) -> None:
        if self._task is not None:
            self._task.files, self._task.size, self._task.rows = (
                self._task.files + files, self._task.size + size, self._task.rows + rows
            )
            self._refresh()

    def note(self, message: str) -> None:
        task = self._task
        if task is not None and task.done >= task.total:
            self._stop()  # a finished task's bar stays above what follows it
        target = self._bar.console if self._bar is not None else err_console
        target.print(f"[dim]{escape(message)}[/dim]", highlight=False, soft_wrap=True)


class PlainProgress:
    """Progress where stderr is not a terminal (a pipe, a CI log): plain lines, never wrapped or coloured; a task's
    counts at most every ``every`` seconds, and when it ends."""

    def __init__(self, every: float = 5.0) -> None:
        self._task: _Task | None = None
        self._every = every
        self._printed = 0.0

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()

    def _print(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def _finish(self) -> None:
        if self._task is not None and self._task.total:
            self._print(self._task.line())
        self._task = None

    def start(self, task: str, total: int, done: int = 0, total_bytes: int = 0, done_bytes: int = 0) -> None:
        self._finish()
        self._task = _Task(task, total, done, total_bytes, done_bytes)
        self._printed = time.monotonic()
        earlier = f" ({done:,} done earlier)" if done else ""
        size = f", {format_size(total_bytes)}" if total_bytes else ""
        self._print(f"{task}: {total:,} to do{size}{earlier}")

    def _maybe_print(self) -> None:
        if self._task is not None and time.monotonic() - self._printed >= self._every:
            self._printed = time.monotonic()
            self._print(self._task.line())

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._task.done += steps
            self._maybe_print()

    def flow(self, files: int = 0, size: int = 0, rows: int = 0) -> None:
        if self._task is not None:
            self._task.files, self._task.size, self._task.rows = (
                self._task.files + files, self._task.size + size, self._task.rows + rows
            )
            self._maybe_print()

    def note(self, message: str) -> None:
        self._print(message)


class QuietProgress(NoProgress):
    """``-q``: no progress and no notes; errors still go to stderr."""

    def __enter__(self) -> QuietProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Display:
    """How the command shows progress: set once from ``-q`` and whether stderr is a terminal."""

    quiet = False


def progress_display() -> RichProgress | PlainProgress | QuietProgress:
    """The progress display for this command: bars on a terminal, plain lines in a pipe or a log, nothing with -q."""
    if Display.quiet:
        return QuietProgress()
    if sys.stderr.isatty():
        return RichProgress()
    return PlainProgress()


def print_result(result: Any) -> None:
    console.print(str(result), highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)


OUTPUT_VERSION = 1
"""Version of the documents ``--output json`` prints (README, "Machine-readable output"). A new key keeps the
version; a key removed, renamed or changing meaning bumps it."""


class JsonOutput:
    """The command printing one JSON document on stdout, if any: errors then become a JSON document too."""

    command: str | None = None


def print_document(command: str, data: Mapping[str, Any]) -> None:
    """One JSON document on stdout: ``{"dbsnaplake_output": 1, "command": ..., "ok": ..., ...}``."""
    print_json({"dbsnaplake_output": OUTPUT_VERSION, "command": command, **data})


def print_error_document(error: BaseException) -> None:
    if JsonOutput.command is not None:
        print_document(
            JsonOutput.command, {"ok": False, "error": {"type": type(error).__name__, "message": str(error)}}
        )
