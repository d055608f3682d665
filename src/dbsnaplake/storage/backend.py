"""What a storage backend offers (local disk, S3): every write atomic, readers see the whole object or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

from dbsnaplake.errors import DbSnapLakeError

TEMP_SUFFIX = ".dbsnaplake-tmp"


class StorageError(DbSnapLakeError):
    """A storage request failed for good (after retries): permission, missing bucket, unreachable endpoint, ...

    ``transient`` tells whether a later retry may succeed (a timeout or a 5xx that outlasted the retries), as
    opposed to a permanent refusal (403, NoSuchBucket, read-only file system, not a directory)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or a HEAD says about one object."""

    uri: str
    size: int
    etag: str | None = None




class Backend(Protocol):
    def read_bytes(self, uri: str) -> bytes: ...
    def read_object(self, uri: str) -> tuple[bytes, ObjectInfo]: ...
    def read_range(self, uri: str, start: int, length: int) -> bytes: ...
    def head(self, uri: str) -> ObjectInfo: ...
    def list_files(self, prefix: str) -> Iterator[ObjectInfo]: ...
    def delete(self, uri: str) -> None: ...
    def publish(self, local_path: Path, uri: str, durable: bool = True) -> None: ...
    def sync(self) -> None: ...
    def open_input_file(
        self, uri: str, size: int | None, read_ahead: int = 0, streamed: bool = False
    ) -> pa.NativeFile: ...
    def temp_path_for(self, uri: str) -> Path: ...
    def put_if_absent(self, uri: str, data: bytes) -> bool: ...
    def read_versioned(self, uri: str) -> tuple[bytes, str] | None: ...
    def replace_if_unchanged(self, uri: str, data: bytes, version: str | None) -> bool: ...
    def copy(self, source: str, target: str, durable: bool = True) -> None: ...


