"""A group follower for tests: what a stage's follower (validation's read-back) hears, noted in order."""

from __future__ import annotations


class HeardOf:
    """Notes each file published, each group failed and each result, in the order heard."""

    def __init__(self) -> None:
        self.heard: list[tuple[object, ...]] = []

    def published(self, group: int, uri: str, size: int) -> None:
        self.heard.append(("published", group, uri, size))

    def failed(self, group: int) -> None:
        self.heard.append(("failed", group))

    def finished(self, result: object) -> None:
        self.heard.append(("finished", result))
