"""Files on this machine's disk: written to a hidden temporary name in the same folder, fsynced (or flushed with a
task's other files, in one sync before its done-marker), renamed."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pyarrow as pa

from dbsnaplake.storage.backend import TEMP_SUFFIX, ObjectInfo, StorageError

F = TypeVar("F", bound=Callable[..., Any])
_TRANSIENT = {errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT}


def _storage_errors(function: F) -> F:
    """A disk failure other than a missing file leaves as :class:`StorageError` naming the path."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (FileNotFoundError, FileExistsError):
            raise
        except OSError as exc:
            where = exc.filename or (args[1] if len(args) > 1 else "?")
            raise StorageError(
                f"{where}: {exc.strerror or exc} — check that the folder exists and is writable",
                transient=exc.errno in _TRANSIENT,
            ) from exc

    return cast(F, wrapper)


C = TypeVar("C", bound=type)


def _storage_errors_of(cls: C) -> C:
    """Class decorator: :func:`_storage_errors` on every public method."""
    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and callable(value) and not isinstance(value, type):
            setattr(cls, name, _storage_errors(value))
    return cls


def _info(path: str, found: os.stat_result) -> ObjectInfo:
    """A file's size, and an ETag-like token of its modification time and size: a file rewritten in place, even
    with the same size, gets another one."""
    return ObjectInfo(uri=path, size=found.st_size, etag=f"{found.st_mtime_ns:x}-{found.st_size:x}")


@_storage_errors_of
class LocalBackend:
    """Files on this machine's disk."""

    def read_bytes(self, uri: str) -> bytes:
        return Path(uri).read_bytes()

    def read_object(self, uri: str) -> tuple[bytes, ObjectInfo]:
        with open(uri, "rb") as f:
            return f.read(), _info(uri, os.fstat(f.fileno()))

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        with open(uri, "rb") as f:
            f.seek(start)
            return f.read(length)

    def head(self, uri: str) -> ObjectInfo:
        return _info(uri, os.stat(uri))

    def list_files(self, prefix: str) -> Iterator[ObjectInfo]:
        root = prefix.rstrip("/") or "/"
        if os.path.isfile(root):
            yield self.head(root)
            return
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    found = os.stat(path)
                except FileNotFoundError:
                    continue  # renamed or deleted since the folder was read (a writer finishing)
                yield _info(path, found)

    def delete(self, uri: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(uri)

    def temp_path_for(self, uri: str) -> Path:
        target = Path(uri)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where a folder of the path must be: not a missing file, and permanent
            raise StorageError(f"{target.parent}: a file stands where this folder must be: choose another path") from None
        return target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"

    def publish(self, local_path: Path, uri: str, durable: bool = True) -> None:
        """Rename the written file to ``uri``; ``durable``: first flush it, and the rename after, to the disk (two
        fsyncs, about a millisecond each: without, the caller calls :meth:`sync` before it records the file)."""
        if durable:
            with open(local_path, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(local_path, uri)
        if not durable:
            return
        dir_fd = os.open(os.path.dirname(uri), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def sync(self) -> None:
        """Flush every file written, and every rename, to the disk: one call for all of a task's files."""
        os.sync()

    def open_input_file(
        self, uri: str, size: int | None, read_ahead: int = 0, streamed: bool = False
    ) -> pa.NativeFile:
        """A memory map (``read_ahead`` and ``streamed`` are for S3: the page cache reads ahead here)."""
        return pa.memory_map(uri, "r")

    def copy(self, source: str, target: str, durable: bool = True) -> None:
        path = self.temp_path_for(target)
        try:
            shutil.copyfile(source, path)
            self.publish(path, target, durable)
        finally:
            path.unlink(missing_ok=True)

    def put_if_absent(self, uri: str, data: bytes) -> bool:
        path = self.temp_path_for(uri)
        try:
            path.write_bytes(data)
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
            os.link(path, uri)  # fails if ``uri`` exists: atomic create-if-absent, content complete
            return True
        except FileExistsError:
            return False
        finally:
            path.unlink(missing_ok=True)

    def read_versioned(self, uri: str) -> tuple[bytes, str] | None:
        try:
            with open(uri, "rb") as f:
                info = os.fstat(f.fileno())
                return f.read(), f"{info.st_ino}-{info.st_mtime_ns}-{info.st_size}"
        except FileNotFoundError:
            return None

    def replace_if_unchanged(self, uri: str, data: bytes, version: str | None) -> bool:
        import fcntl

        target = Path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(
            target.parent / f".{target.name}.lock", "a"
        ) as guard:  # serializes the compare and the swap on this machine
            fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
            current = self.read_versioned(uri)
            if (current[1] if current else None) != version:
                return False
            path = self.temp_path_for(uri)
            try:
                path.write_bytes(data)
                self.publish(path, uri)
            finally:
                path.unlink(missing_ok=True)
            return True


