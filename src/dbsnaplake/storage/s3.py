"""Objects in S3 or any S3-compatible store, through obstore (Rust ``object_store``).

Credentials, region and endpoint come from the standard AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_REGION``,
``AWS_ENDPOINT_URL``, ``AWS_PROFILE``); 5xx, throttling and dropped connections are retried with exponential
backoff and jitter. Objects are single PUTs or multipart uploads, which S3 publishes atomically.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import ipaddress
import logging
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import pyarrow as pa

from dbsnaplake.storage.aws import DEFAULT_REGION, aws_endpoint, aws_region
from dbsnaplake.storage.backend import TEMP_SUFFIX, ObjectInfo, StorageError
from dbsnaplake.storage.uris import S3_SCHEME


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    return bucket, key


def _s3_timeout() -> str:
    """The whole-request timeout: ``DBSNAPLAKE_S3_TIMEOUT`` in seconds (``2``, ``0.5``) or as obstore reads it
    (``500ms``, ``2min``); 120 s by default. A request that times out is retried like a 5xx."""
    value = os.environ.get("DBSNAPLAKE_S3_TIMEOUT", "").strip()
    if not value:
        return "120s"
    try:
        return f"{round(float(value) * 1000)}ms"
    except ValueError:
        return value


def forget_stores() -> None:
    """Forget the clients made so far: the next request reads the AWS environment again."""
    _s3_store.cache_clear()


@functools.lru_cache(maxsize=64)
def _s3_store(bucket: str) -> Any:
    from obstore.store import S3Store

    endpoint = aws_endpoint("s3")
    kwargs: dict[str, Any] = {
        "client_options": {"allow_http": endpoint.startswith("http://"), "timeout": _s3_timeout()},
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
    if aws_region() is None:
        kwargs["region"] = DEFAULT_REGION
    if not endpoint.startswith("http://") or is_loopback(endpoint):
        # over HTTPS (AWS's own endpoint included) TLS protects the body, as the AWS SDKs assume (UNSIGNED-PAYLOAD),
        # and to a server on this machine (MinIO, moto) it crosses no network: no SHA-256 of every byte uploaded
        # (1.3 CPU-s of a 1 GiB run's uploads); plain HTTP to another machine keeps the signed hash
        kwargs["unsigned_payload"] = True
    return S3Store(bucket, **kwargs)


def is_loopback(endpoint: str) -> bool:
    """Whether ``endpoint`` is a server on this machine (``localhost``, ``127.0.0.1``, ``[::1]``)."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: resolving it would take a request, and it may resolve elsewhere later
        return False


# obstore retries 5xx, throttling, timeouts and dropped connections itself, except (measured through
# testing.fault_proxy, obstore 0.12): a dropped connection or a timeout on a POST (the DeleteObjects request behind
# obstore.delete, CreateMultipartUpload, CompleteMultipartUpload), and a response body cut off half-way on a LIST
# page or a POST. A CompleteMultipartUpload that succeeded but whose answer was lost fails as "NoSuchUpload".
# Listing, deleting and uploading a whole file are idempotent, so those three calls are retried here as a whole.
T = TypeVar("T")
log = logging.getLogger(__name__)
RETRY_ATTEMPTS = 5
RETRY_BASE_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
_OBSTORE_RETRIES = re.compile(r"after (\d+) retries, max_retries: (\d+)")


def _is_transient(exc: Exception) -> bool:
    """A transport failure obstore did not retry (one it retried up to its limit is not transient)."""
    from obstore.exceptions import GenericError

    message = str(exc)
    retries = _OBSTORE_RETRIES.search(message)
    if retries and int(retries[1]) >= int(retries[2]):
        return False
    return "NoSuchUpload" in message or (isinstance(exc, GenericError) and "HTTP error" in message)


def _retrying(action: Callable[[], T]) -> T:
    """Run ``action`` (idempotent as a whole) again after a transient failure: at most ``RETRY_ATTEMPTS`` times,
    waiting 0.2, 0.4, 0.8 ... s (at most 5 s), each with jitter of up to half of it."""
    attempt = 1
    while True:
        try:
            return action()
        except Exception as exc:
            if attempt >= RETRY_ATTEMPTS or not _is_transient(exc):
                raise
        wait = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1))
        log.debug("S3 call failed with a transient error (attempt %d), retrying in about %.1fs", attempt, wait)
        time.sleep(wait / 2 + random.uniform(0, wait / 2))
        attempt += 1


# An S3 error message can carry credentials: a SignatureDoesNotMatch answer echoes the request's signature and its
# canonical request (the session token included, when there is one), and obstore puts the answer in the message.
# Messages reach stderr and the failed-group markers written to the store, so they are scrubbed where raised.
REDACTED = "(redacted)"  # not in square brackets: rich, which prints errors, reads those as markup
_SECRET_ELEMENTS = re.compile(
    r"<(SignatureProvided|StringToSign|StringToSignBytes|CanonicalRequest|CanonicalRequestBytes)>.*?</\1>", re.DOTALL
)
_SECRET_PARAMETERS = re.compile(
    r"(?i)\b(?:x-amz-signature|signature|x-amz-security-token|x-amz-credential)=[^\s,&;\"'<>]*"
)
_SECRET_HEADERS = re.compile(r"(?im)\b(authorization|x-amz-security-token)\s*:[^\n<]*")
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def scrub_secrets(text: str) -> str:
    """``text`` without signatures, canonical requests, session tokens and the secret key of the environment."""
    text = _SECRET_ELEMENTS.sub(lambda m: f"<{m[1]}>{REDACTED}</{m[1]}>", text)
    text = _SECRET_PARAMETERS.sub(REDACTED, text)
    text = _SECRET_HEADERS.sub(lambda m: f"{m[1]}: {REDACTED}", text)
    for name in _SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 8:
            text = text.replace(value, REDACTED)
    return text


def _scrub_exception(exc: BaseException) -> None:
    """Scrub the messages of ``exc`` and of the exceptions chained to it, in place (type and traceback kept)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(scrub_secrets(a) if isinstance(a, str) else a for a in current.args)
        current = current.__cause__ or current.__context__


_ERROR_CODE = re.compile(r"<Code>(\w+)</Code>|\b(NoSuchBucket|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch)\b")
PERMANENT_CODES = ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden")


def _storage_error(exc: Exception) -> Exception:
    """What leaves the S3 backend: a missing object stays ``FileNotFoundError``; any other failure (after the
    retries) is a :class:`StorageError` on one line, with the S3 error code when the answer had one."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    missing_bucket = "NoSuchBucket" in message  # a 404 too, but not a missing object: a permanent refusal
    if isinstance(exc, StorageError) or (isinstance(exc, FileNotFoundError) and not missing_bucket):
        return exc
    found = _ERROR_CODE.search(message)
    code = (found[1] or found[2]) if found else None
    permanent = code in PERMANENT_CODES or "403" in message or "PermissionDenied" in type(exc).__name__
    shown = message if len(message) <= 400 else message[:400] + " ..."
    return StorageError(
        f"S3 request failed{f' ({code})' if code else ''}: {shown} — check the path, the credentials (AWS_*) and "
        "AWS_ENDPOINT_URL, then rerun to resume",
        transient=not permanent,
    )


F = TypeVar("F", bound=Callable[..., Any])


def _scrubbing(function: F) -> F:
    """``function`` (or generator function) whose exceptions leave with their messages scrubbed."""
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from function(*args, **kwargs)
            except Exception as exc:
                _scrub_exception(exc)
                raise _storage_error(exc) from exc

        return cast(F, generator)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            _scrub_exception(exc)
            raise _storage_error(exc) from exc

    return cast(F, wrapper)


C = TypeVar("C", bound=type)


def _scrub_errors(cls: C) -> C:
    """Class decorator: :func:`_scrubbing` on every public method."""
    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(value):
            setattr(cls, name, _scrubbing(value))
    return cls


MULTIPART_FROM = 100 * 1024**2
"""Files of this size and more are uploaded in parts (AWS: "when your object size reaches 100 MB, you should consider
using multipart uploads"), smaller ones in one PUT: one request instead of a part each and two more, and on moto's
server 35 % less CPU than parts of 16 MiB (measured: 0.59 against 0.91 CPU-s per 100 MiB). The file is in memory
while it is sent: less than the parts in flight of a multipart upload (8 x 16 MiB)."""
MULTIPART_PART = 16 * 1024**2
MULTIPART_UPLOADS = 8
"""Parts of one multipart upload sent at once."""
STREAM_REOPENS = 3
"""Times a streamed GET that failed midway is asked for again from the next byte before the read fails. obstore
resumes a body cut off by a reset connection itself (measured through the fault proxy); this is for what it gives
up on: a stream held open for minutes by a slow merge, a server that keeps failing."""


class _S3ObjectReader(io.RawIOBase):
    """A seekable file over an S3 object.

    Without ``read_ahead``, a read is one ranged GET: a Parquet footer costs one request. With ``read_ahead`` (a file
    read in order), a ranged GET fetches at least that many bytes from where the read starts, and the reads that
    fall within them are served from memory: one request per ``read_ahead`` bytes.

    ``streamed`` (a file read through on its own): a read opens one GET from where it starts to the object's end and
    takes its bytes as they arrive, ``read_ahead`` bytes at least at a time (the memory it holds: a chunk and the
    read); the reads that follow, in order or skipping at most ``read_ahead`` bytes, are served from that response; a
    read behind it or further ahead opens another. A file read through costs one request however big it is (moto's
    server reads an object whole for every GET: 100 MiB read in 8 MiB GETs cost it 10x the CPU of one GET), but holds
    a connection while it is read: a merge of many files at once reads them by ranged GETs. A response broken off
    midway is asked for again from the next byte, of the same version (``If-Match`` its ETag)."""

    def __init__(self, uri: str, size: int, read_ahead: int = 0, streamed: bool = False) -> None:
        self._uri = uri
        self._bucket, self._key = _split_s3(uri)
        self._size = size
        self._pos = 0
        self._read_ahead = read_ahead
        self._streamed_reads = streamed and read_ahead > 0
        self._buffer_start = 0
        self._buffer = b""
        """The last bytes taken from the stream; the stream goes on from their end."""
        self._stream: Iterator[bytes] | None = None
        self._etag: str | None = None

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

    @_scrubbing
    def read(self, size: int = -1) -> bytes:
        import obstore

        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        if end <= self._pos:
            return b""
        if self._streamed_reads:
            data = self._streamed(self._pos, end)
        elif self._read_ahead > 0:
            data = self._ranged(self._pos, end)
        else:
            data = bytes(obstore.get_range(_s3_store(self._bucket), self._key, start=self._pos, end=end))
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream, self._buffer = None, b""  # the response's connection is let go
        super().close()

    def _ranged(self, start: int, end: int) -> bytes:
        import obstore

        if not (self._buffer_start <= start and end <= self._buffer_start + len(self._buffer)):
            fetch_end = min(self._size, max(end, start + self._read_ahead))
            fetched = bytes(obstore.get_range(_s3_store(self._bucket), self._key, start=start, end=fetch_end))
            if fetch_end == end:  # nothing read ahead: hand the bytes on, keep no buffer
                self._buffer_start, self._buffer = 0, b""
                return fetched
            self._buffer_start, self._buffer = start, fetched
        return self._buffer[start - self._buffer_start : end - self._buffer_start]

    def _streamed(self, start: int, end: int) -> bytes:
        buffer_end = self._buffer_start + len(self._buffer)
        in_buffer = self._buffer_start <= start and end <= buffer_end
        in_reach = self._stream is not None and self._buffer_start <= start <= buffer_end + self._read_ahead
        if not (in_buffer or in_reach):
            self._open(start)
            buffer_end = start
        pieces = [memoryview(self._buffer)[start - self._buffer_start : end - self._buffer_start]]
        while buffer_end < end:
            chunk = self._next_chunk(buffer_end)
            if not chunk:
                break
            self._buffer_start, self._buffer = buffer_end, chunk
            buffer_end += len(chunk)
            if buffer_end > start:
                pieces.append(memoryview(chunk)[max(0, start - self._buffer_start) : end - self._buffer_start])
        return b"".join(pieces)

    def _open(self, start: int) -> None:
        """One GET of the object from ``start`` to its end, streamed (of the version read so far, if any)."""
        import obstore

        options: dict[str, Any] = {"range": {"offset": start}}
        if self._etag:
            options["if_match"] = f'"{self._etag}"'
        result = obstore.get(_s3_store(self._bucket), self._key, options=options)  # type: ignore[arg-type]
        self._etag = self._etag or _clean_etag(result.meta.get("e_tag"))
        self._stream = iter(result.stream(min_chunk_size=self._read_ahead))
        self._buffer_start, self._buffer = start, b""

    def _next_chunk(self, position: int) -> bytes:
        """The stream's next bytes (those at ``position``); ``b""`` at the object's end."""
        from obstore.exceptions import PreconditionError

        reopened = 0
        while True:
            assert self._stream is not None, "a stream is open while it has bytes to give"
            try:
                chunk = bytes(next(self._stream, b""))
            except Exception as exc:
                if reopened == STREAM_REOPENS or isinstance(exc, (PreconditionError, FileNotFoundError)):
                    raise
                reopened += 1
                log.debug("S3 response broken off at byte %d of %s (%s): asking for the rest", position, self._uri, exc)
                self._open(position)
                continue
            if not chunk:
                self._stream = None
            return chunk


@_scrub_errors
class S3Backend:
    """Objects in S3 or any S3-compatible store, through obstore."""

    def read_bytes(self, uri: str) -> bytes:
        return self.read_object(uri)[0]

    def read_object(self, uri: str) -> tuple[bytes, ObjectInfo]:
        import obstore

        bucket, key = _split_s3(uri)
        result = obstore.get(_s3_store(bucket), key)
        info = ObjectInfo(uri=uri, size=int(result.meta["size"]), etag=_clean_etag(result.meta.get("e_tag")))
        return bytes(result.bytes()), info

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

        def listing() -> list[ObjectInfo]:
            return [
                ObjectInfo(
                    uri=f"{S3_SCHEME}{bucket}/{meta['path']}",
                    size=int(meta["size"]),
                    etag=_clean_etag(meta.get("e_tag")),
                )
                for chunk in obstore.list(_s3_store(bucket), prefix=key.rstrip("/") or None)
                for meta in chunk
            ]

        yield from _retrying(listing)

    def delete(self, uri: str) -> None:
        import obstore

        bucket, key = _split_s3(uri)
        with contextlib.suppress(FileNotFoundError):
            _retrying(lambda: obstore.delete(_s3_store(bucket), key))

    def temp_path_for(self, uri: str) -> Path:
        fd, name = tempfile.mkstemp(prefix="dbsnaplake-", suffix=TEMP_SUFFIX)
        os.close(fd)
        return Path(name)

    def publish(self, local_path: Path, uri: str, durable: bool = True) -> None:
        """Upload ``local_path`` as ``uri``: in one PUT below :data:`MULTIPART_FROM` bytes, else in parts of
        :data:`MULTIPART_PART` bytes, several at once. An object is durable once its upload returns (``durable``
        changes nothing)."""
        import obstore

        bucket, key = _split_s3(uri)
        try:
            if local_path.stat().st_size < MULTIPART_FROM:
                data = local_path.read_bytes()
                _retrying(lambda: obstore.put(_s3_store(bucket), key, data, use_multipart=False))
            else:
                _retrying(
                    lambda: obstore.put(
                        _s3_store(bucket), key, local_path, chunk_size=MULTIPART_PART, max_concurrency=MULTIPART_UPLOADS
                    )
                )
        finally:
            local_path.unlink(missing_ok=True)

    def sync(self) -> None:
        """Nothing to do: every PUT is durable when it returns."""

    def copy(self, source: str, target: str, durable: bool = True) -> None:
        """One CopyObject within a bucket (atomic, server side; objects up to 5 GiB); across buckets, a GET and a
        PUT through this machine."""
        import obstore

        (source_bucket, source_key), (bucket, key) = _split_s3(source), _split_s3(target)
        if source_bucket != bucket:
            data = self.read_bytes(source)
            _retrying(lambda: obstore.put(_s3_store(bucket), key, data))
            return
        _retrying(lambda: obstore.copy(_s3_store(bucket), source_key, key))

    def open_input_file(
        self, uri: str, size: int | None, read_ahead: int = 0, streamed: bool = False
    ) -> pa.NativeFile:
        if size is None:
            size = self.head(uri).size
        return pa.PythonFile(_S3ObjectReader(uri, size, read_ahead, streamed), mode="r")

    def put_if_absent(self, uri: str, data: bytes) -> bool:
        """One PUT with ``If-None-Match: *``: S3 refuses it (412) when the object exists."""
        import obstore
        from obstore.exceptions import AlreadyExistsError

        bucket, key = _split_s3(uri)
        try:
            _retrying(lambda: obstore.put(_s3_store(bucket), key, data, mode="create"))
        except AlreadyExistsError:
            return False
        return True

    def read_versioned(self, uri: str) -> tuple[bytes, str] | None:
        import obstore

        bucket, key = _split_s3(uri)
        try:
            result = obstore.get(_s3_store(bucket), key)
        except FileNotFoundError:
            return None
        return bytes(result.bytes()), str(result.meta["e_tag"])

    def replace_if_unchanged(self, uri: str, data: bytes, version: str | None) -> bool:
        """``If-Match: <etag>`` (or ``If-None-Match: *`` when there was none): S3 refuses it if another writer
        replaced the object since it was read."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        if version is None:
            return self.put_if_absent(uri, data)
        bucket, key = _split_s3(uri)
        try:
            _retrying(lambda: obstore.put(_s3_store(bucket), key, data, mode={"e_tag": version}))
        except (PreconditionError, AlreadyExistsError, FileNotFoundError):
            return False
        return True


def _clean_etag(etag: Any) -> str | None:
    return str(etag).strip('"') if etag else None


