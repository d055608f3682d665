"""How stages report progress. The library reports to a ``Progress``; only the CLI draws bars."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Where a stage reports how far it got: tasks with a number of steps, and notes for a person."""

    def start(self, task: str, total: int) -> None:
        """A new task with ``total`` steps begins (the previous one, if any, is finished)."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current task are done."""

    def note(self, message: str) -> None:
        """A line worth showing a person (how a default was chosen, what was skipped)."""


class NoProgress:
    """Reports nowhere: the default for library calls."""

    def start(self, task: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        pass
