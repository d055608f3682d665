"""What the command prints: results on stdout, progress bars and notes on stderr."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

err_console = Console(stderr=True)
console = Console(markup=False)  # results print as they are: paths and values may hold [brackets]


class RichProgress:
    """Draws one progress bar per task on stderr (hidden when stderr is not a terminal)."""

    def __init__(self) -> None:
        self._bar = RichBar(
            TextColumn("{task.description:<36}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start(self, task: str, total: int) -> None:
        self._task = self._bar.add_task(task, total=total)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, steps)

    def note(self, message: str) -> None:
        self._bar.console.print(f"[dim]{escape(message)}[/dim]")


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
