"""One storage interface over local disk and S3, chosen by the URI's scheme.

URIs are either ``s3://bucket/key`` or local paths (``file://`` is accepted and stripped). Every write is
atomic: readers see the whole object or nothing. Local files are written to a hidden temporary name in the
same folder, fsynced and renamed; S3 objects are single PUTs (or multipart uploads, which S3 also publishes
atomically). S3 is reached through obstore (Rust ``object_store``): credentials, region and endpoint come
from the standard AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``),
and 5xx/throttling/dropped connections are retried with exponential backoff and jitter.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

S3_SCHEME = "s3://"
TEMP_SUFFIX = ".dbsnaplake-tmp"


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or a HEAD says about one object."""

    uri: str
    size: int
    etag: str | None = None


def normalize_uri(uri: str) -> str:
    """``s3://b/k`` stays as it is; ``file:///x`` and relative paths become absolute local paths."""
    if uri.startswith(("s3://", "S3://", "s3a://")):
        return S3_SCHEME + uri.split("://", 1)[1]
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return os.path.abspath(os.path.expanduser(uri))


def normalize_uris(uris: Iterable[str]) -> list[str]:
    """:func:`normalize_uri` over many URIs; those already normal (``s3://`` or a clean absolute path) are kept
    as they are, which makes a million-file manifest cheap."""
    return [
        u if u.startswith(S3_SCHEME) or (u.startswith("/") and "/." not in u and "//" not in u) else normalize_uri(u)
        for u in uris
    ]


def is_s3(uri: str) -> bool:
    return uri.startswith(S3_SCHEME)


def as_dir(uri: str) -> str:
    """The URI of a folder, always ending with ``/``."""
    uri = normalize_uri(uri)
    return uri if uri.endswith("/") else uri + "/"


def join(base: str, *parts: str) -> str:
    """Join path segments onto a URI: ``join("s3://b/p/", "x", "y.json") == "s3://b/p/x/y.json"``."""
    out = base.rstrip("/")
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}"
    return out


def is_within(child: str, parent: str) -> bool:
    """True when ``child`` is ``parent`` or lies below it."""
    return as_dir(child).startswith(as_dir(parent))


def common_folder(uris: list[str]) -> str | None:
    """The deepest folder holding every URI, or ``None`` when that is a bucket or the filesystem root."""
    if not uris:
        return None
    # character by character on purpose, then cut back to a "/": the extremes bound every URI's common prefix
    prefix = os.path.commonprefix([min(uris), max(uris)])  # noqa: RUF071
    folder = prefix[: prefix.rfind("/") + 1]
    too_broad = folder.count("/") <= (3 if is_s3(folder) else 1)  # "s3://bucket/" or "/"
    return None if too_broad else folder


def base_name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def parent(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0] + "/"


class Backend(Protocol):
    def read_bytes(self, uri: str) -> bytes: ...
    def read_range(self, uri: str, start: int, length: int) -> bytes: ...
    def head(self, uri: str) -> ObjectInfo: ...
    def list_files(self, prefix: str) -> Iterator[ObjectInfo]: ...
    def delete(self, uri: str) -> None: ...
    def publish(self, local_path: Path, uri: str) -> None: ...
    def open_input_file(self, uri: str, size: int | None) -> pa.NativeFile: ...
    def temp_path_for(self, uri: str) -> Path: ...


class LocalBackend:
    """Files on this machine's disk."""

    def read_bytes(self, uri: str) -> bytes:
        return Path(uri).read_bytes()

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        with open(uri, "rb") as f:
            f.seek(start)
            return f.read(length)

    def head(self, uri: str) -> ObjectInfo:
        return ObjectInfo(uri=uri, size=os.stat(uri).st_size)

    def list_files(self, prefix: str) -> Iterator[ObjectInfo]:
        root = prefix.rstrip("/") or "/"
        if os.path.isfile(root):
            yield self.head(root)
            return
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                yield ObjectInfo(uri=path, size=os.stat(path).st_size)

    def delete(self, uri: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(uri)

    def temp_path_for(self, uri: str) -> Path:
        target = Path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"

    def publish(self, local_path: Path, uri: str) -> None:
        with open(local_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(local_path, uri)
        dir_fd = os.open(os.path.dirname(uri), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def open_input_file(self, uri: str, size: int | None) -> pa.NativeFile:
        return pa.memory_map(uri, "r")


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    return bucket, key


@functools.lru_cache(maxsize=64)
def _s3_store(bucket: str) -> Any:
    from obstore.store import S3Store

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    kwargs: dict[str, Any] = {
        "client_options": {"allow_http": endpoint.startswith("http://"), "timeout": "120s"},
        "retry_config": {
            "max_retries": 8,
            "retry_timeout": timedelta(seconds=180),
            "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=15), "base": 2},
        },
    }
    if os.environ.get("AWS_PROFILE") and not os.environ.get("AWS_ACCESS_KEY_ID"):
        try:
            from obstore.auth.boto3 import Boto3CredentialProvider
        except ImportError as exc:  # pragma: no cover - depends on the user's install
            raise ImportError("AWS_PROFILE is set: reading AWS profiles needs boto3. Run: pip install boto3") from exc
        kwargs["credential_provider"] = Boto3CredentialProvider()
    if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        kwargs["region"] = "us-east-1"
    return S3Store(bucket, **kwargs)


class _RangedS3Reader(io.RawIOBase):
    """A seekable file over an S3 object: every read is one ranged GET, so Parquet footers cost one request."""

    def __init__(self, uri: str, size: int) -> None:
        self._uri = uri
        self._bucket, self._key = _split_s3(uri)
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        import obstore

        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        if end <= self._pos:
            return b""
        data = bytes(obstore.get_range(_s3_store(self._bucket), self._key, start=self._pos, end=end))
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class S3Backend:
    """Objects in S3 or any S3-compatible store, through obstore."""

    def read_bytes(self, uri: str) -> bytes:
        import obstore

        bucket, key = _split_s3(uri)
        return bytes(obstore.get(_s3_store(bucket), key).bytes())

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        import obstore

        bucket, key = _split_s3(uri)
        return bytes(obstore.get_range(_s3_store(bucket), key, start=start, length=length))

    def head(self, uri: str) -> ObjectInfo:
        import obstore

        bucket, key = _split_s3(uri)
        meta = obstore.head(_s3_store(bucket), key)
        return ObjectInfo(uri=uri, size=int(meta["size"]), etag=_clean_etag(meta.get("e_tag")))

    def list_files(self, prefix: str) -> Iterator[ObjectInfo]:
        import obstore

        bucket, key = _split_s3(prefix)
        for chunk in obstore.list(_s3_store(bucket), prefix=key.rstrip("/") or None):
            for meta in chunk:
                yield ObjectInfo(
                    uri=f"{S3_SCHEME}{bucket}/{meta['path']}",
                    size=int(meta["size"]),
                    etag=_clean_etag(meta.get("e_tag")),
                )

    def delete(self, uri: str) -> None:
        import obstore

        bucket, key = _split_s3(uri)
        with contextlib.suppress(FileNotFoundError):
            obstore.delete(_s3_store(bucket), key)

    def temp_path_for(self, uri: str) -> Path:
        fd, name = tempfile.mkstemp(prefix="dbsnaplake-", suffix=TEMP_SUFFIX)
        os.close(fd)
        return Path(name)

    def publish(self, local_path: Path, uri: str) -> None:
        import obstore

        bucket, key = _split_s3(uri)
        try:
            obstore.put(_s3_store(bucket), key, local_path, chunk_size=16 * 1024 * 1024, max_concurrency=8)
        finally:
            local_path.unlink(missing_ok=True)

    def open_input_file(self, uri: str, size: int | None) -> pa.NativeFile:
        if size is None:
            size = self.head(uri).size
        return pa.PythonFile(_RangedS3Reader(uri, size), mode="r")


def _clean_etag(etag: Any) -> str | None:
    return str(etag).strip('"') if etag else None


_LOCAL = LocalBackend()
_S3 = S3Backend()


def backend(uri: str) -> Backend:
    return _S3 if is_s3(uri) else _LOCAL


# ---- the module-level interface the rest of the package uses -------------------------------------------


def read_bytes(uri: str) -> bytes:
    return backend(uri).read_bytes(uri)


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


def delete_folder(prefix: str) -> int:
    """Delete every object below a folder; returns how many were deleted."""
    prefix = as_dir(prefix)
    infos = list(backend(prefix).list_files(prefix))
    for info in infos:
        delete(info.uri)
    if not is_s3(prefix) and os.path.isdir(prefix):
        shutil.rmtree(prefix, ignore_errors=True)
    return len(infos)


def write_bytes(uri: str, data: bytes) -> None:
    with atomic_output(uri) as path:
        path.write_bytes(data)


@contextlib.contextmanager
def atomic_output(uri: str) -> Iterator[Path]:
    """Yield a local path to write into; on success it is published at ``uri`` in one step, on error removed."""
    store = backend(uri)
    path = store.temp_path_for(uri)
    try:
        yield path
        store.publish(path, uri)
    finally:
        path.unlink(missing_ok=True)


def open_input_file(uri: str, size: int | None = None) -> pa.NativeFile:
    """A random-access file for pyarrow (local memory map, or ranged GETs on S3)."""
    return backend(uri).open_input_file(uri, size)
