"""One storage interface over local disk and S3, chosen by the URI's scheme.

URIs are either ``s3://bucket/key`` or local paths (``file://`` is accepted and stripped). Every write is
atomic: readers see the whole object or nothing (see :mod:`.local` and :mod:`.s3`). A backend's module loads
the first time a URI of its scheme is used, so the S3 client (obstore) is never imported for local work.
A request that fails for good raises :class:`StorageError`; a missing object raises ``FileNotFoundError``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

from dbsnaplake.storage.backend import TEMP_SUFFIX, Backend, ObjectInfo, StorageError
from dbsnaplake.storage.uris import (
    S3_SCHEME,
    as_dir,
    base_name,
    common_folder,
    is_s3,
    is_within,
    join,
    normalize_uri,
    normalize_uris,
    parent,
)

__all__ = [
    "S3_SCHEME",
    "TEMP_SUFFIX",
    "Backend",
    "ObjectInfo",
    "StorageError",
    "as_dir",
    "atomic_output",
    "backend",
    "base_name",
    "common_folder",
    "copy",
    "delete",
    "delete_folder",
    "exists",
    "head",
    "is_s3",
    "is_within",
    "join",
    "list_files",
    "normalize_uri",
    "normalize_uris",
    "open_input_file",
    "parent",
    "put_if_absent",
    "read_bytes",
    "read_object",
    "read_range",
    "read_versioned",
    "remove_temporary_files",
    "replace_if_unchanged",
    "reset_clients",
    "write_bytes",
]


@functools.cache
def _backend(s3: bool) -> Backend:
    if s3:
        from dbsnaplake.storage.s3 import S3Backend

        return S3Backend()
    from dbsnaplake.storage.local import LocalBackend

    return LocalBackend()


def backend(uri: str) -> Backend:
    """The backend of ``uri``'s scheme."""
    return _backend(is_s3(uri))


def reset_clients() -> None:
    """Forget the S3 clients made so far (one per bucket): the next request reads the AWS environment again."""
    if "dbsnaplake.storage.s3" in sys.modules:
        from dbsnaplake.storage.s3 import forget_stores

        forget_stores()


def read_bytes(uri: str) -> bytes:
    return backend(uri).read_bytes(uri)


def read_object(uri: str) -> tuple[bytes, ObjectInfo]:
    """The object's bytes and what the store said of them in the same answer (size, and ETag on S3): one GET, so
    the two cannot be of different versions (a HEAD then a GET can)."""
    return backend(uri).read_object(uri)


def read_range(uri: str, start: int, length: int) -> bytes:
    return backend(uri).read_range(uri, start, length)


def head(uri: str) -> ObjectInfo:
    """Size (and ETag on S3) of one object; raises ``FileNotFoundError`` when it is not there."""
    return backend(uri).head(uri)


def exists(uri: str) -> bool:
    try:
        head(uri)
    except FileNotFoundError:
        return False
    return True


def list_files(prefix: str) -> list[ObjectInfo]:
    """Every object below a folder, recursively, sorted by URI (temporary files excluded)."""
    prefix = as_dir(prefix)
    found = [info for info in backend(prefix).list_files(prefix) if not info.uri.endswith(TEMP_SUFFIX)]
    return sorted(found, key=lambda info: info.uri)


def delete(uri: str) -> None:
    backend(uri).delete(uri)


def remove_temporary_files(prefix: str) -> int:
    """Delete the temporary files killed writers left below a local folder (S3 writes leave none there)."""
    prefix = as_dir(prefix)
    if is_s3(prefix):
        return 0
    leftovers = [i.uri for i in backend(prefix).list_files(prefix) if i.uri.endswith(TEMP_SUFFIX)]
    for uri in leftovers:
        delete(uri)
    return len(leftovers)


def delete_folder(prefix: str) -> int:
    """Delete every object below a folder; returns how many were deleted."""
    prefix = as_dir(prefix)
    infos = list(backend(prefix).list_files(prefix))
    for info in infos:
        delete(info.uri)
    if not is_s3(prefix) and os.path.isdir(prefix):
        shutil.rmtree(prefix, ignore_errors=True)
    return len(infos)


def put_if_absent(uri: str, data: bytes) -> bool:
    """Create ``uri`` holding ``data`` unless it exists (S3 ``If-None-Match: *``; a hard link locally).
    Returns whether this call created it. Where two writers could race, exactly one wins. A request retried
    after its answer was lost can report ``False`` for a write that did happen: read back to tell."""
    return backend(uri).put_if_absent(uri, data)


def read_versioned(uri: str) -> tuple[bytes, str] | None:
    """The object's bytes and a version token (ETag on S3) for :func:`replace_if_unchanged`; ``None`` if absent."""
    return backend(uri).read_versioned(uri)


def replace_if_unchanged(uri: str, data: bytes, version: str | None) -> bool:
    """Compare-and-swap: write ``data`` only if ``uri`` still has ``version`` (``None``: still absent).
    As with :func:`put_if_absent`, ``False`` after a lost answer may hide our own write: read back to tell."""
    return backend(uri).replace_if_unchanged(uri, data, version)


def copy(source: str, target: str, durable: bool = True) -> None:
    """Copy the object ``source`` to ``target`` atomically: a server-side copy on S3 (no bytes through this
    machine), a copy to a temporary name then a rename on local disk (``durable=False``: not flushed to the disk;
    the caller calls :func:`make_durable` before it records the file, as with :func:`atomic_output`). Both URIs must
    be of one kind; a missing ``source`` raises ``FileNotFoundError``."""
    if is_s3(source) != is_s3(target):
        raise ValueError(f"cannot copy between local disk and S3: {source} -> {target}")
    backend(target).copy(source, target, durable)


def write_bytes(uri: str, data: bytes) -> None:
    with atomic_output(uri) as path:
        path.write_bytes(data)


@contextlib.contextmanager
def atomic_output(uri: str, durable: bool = True) -> Iterator[Path]:
    """Yield a local path to write into; on success it is published at ``uri`` in one step, on error removed.
    ``durable=False``: on local disk the file is not flushed to the disk file by file; whoever records that it
    exists calls :func:`make_durable` first (a task writing thousands of files flushes them once, not each)."""
    store = backend(uri)
    path = store.temp_path_for(uri)
    try:
        yield path
        store.publish(path, uri, durable)
    finally:
        path.unlink(missing_ok=True)


def make_durable(*roots: str) -> None:
    """Flush to the disk everything written under ``roots`` with ``durable=False`` (nothing to do on S3)."""
    for is_on_s3 in sorted({is_s3(root) for root in roots}):
        _backend(is_on_s3).sync()


STREAM_READ_AHEAD = 8 * 1024**2
"""For a file read in order on S3: the bytes a GET fetches at least (AWS's advice for ranged GETs is 8-16 MB), or
taken at least at a time from its one streamed GET (see :func:`open_input_file`)."""


def open_input_file(
    uri: str, size: int | None = None, read_ahead: int = 0, streamed: bool = False
) -> pa.NativeFile:
    """A random-access file for pyarrow (local memory map, or GETs on S3). ``read_ahead`` (a file read in order): on
    S3, a GET fetches at least this many bytes from where the read starts, and the reads that follow within them are
    served from memory; without, a read is one ranged GET. ``streamed`` (a file read through on its own): on S3, one
    GET from where the reading starts to the object's end, taken ``read_ahead`` bytes at a time, serves the reads in
    order (it holds a connection while the file is read). Nothing changes on local disk."""
    return backend(uri).open_input_file(uri, size, read_ahead, streamed)


def open_for_streaming(
    uri: str, size: int | None = None, read_ahead: int = STREAM_READ_AHEAD, streamed: bool = True
) -> pa.NativeFile:
    """A file read through once, a part at a time: on local disk with plain reads (a memory map's pages count in
    the process's resident memory as they are read: streaming a file bigger than ``--worker-memory`` would seem to
    hold it all), on S3 with one streamed GET taken ``read_ahead`` bytes at a time (``streamed=False``: ranged GETs
    of ``read_ahead`` bytes, for a file read among many at once)."""
    import pyarrow as pa  # storage imports pyarrow only where it is used

    return open_input_file(uri, size, read_ahead, streamed) if is_s3(uri) else pa.OSFile(uri)
