"""One orchestrator per staging area: a second ``dbsnaplake run`` on the same staging area refuses to start.

Group workers (``dbsnaplake etl`` / ``compact``) take no lock: their outputs have deterministic names and they
may run twice, even at once. Orchestration does take it (planning resets state, publishing switches pointers).

- Local disk: ``fcntl.flock`` on ``manifests/state/lock.json``. The kernel releases it when the process dies,
  however it dies, so a rerun after ``kill -9`` never finds a stale lock.
- S3: a lease object created with ``If-None-Match: *`` (exactly one run wins), renewed every 15 s with
  ``If-Match``. A lease not renewed for 60 s, or held by a process of this host that is gone, is stale and is
  taken over with ``If-Match`` on its ETag (again, exactly one run wins).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO

from dbsnaplake import storage
from dbsnaplake.errors import RecordError, RunLockedError
from dbsnaplake.layout import LOCK_FILE, S3Location
from dbsnaplake.records import LockHolder

LEASE_SECONDS = 60.0
RENEW_SECONDS = 15.0


def _holder(owner: str) -> LockHolder:
    return LockHolder(
        owner=owner,
        host=socket.gethostname(),
        pid=os.getpid(),
        started_at=time.time(),
        expires_at=time.time() + LEASE_SECONDS,
        command=" ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200],
    )


def _parse(raw: bytes | str, uri: str) -> LockHolder | None:
    """The holder in a lock file; ``None`` for an empty or unreadable one (a writer that died mid-write)."""
    try:
        return LockHolder.from_json(raw.encode() if isinstance(raw, str) else raw, uri)
    except RecordError:
        return None


def _describe(holder: LockHolder | None) -> str:
    if holder is None:
        return "a run that did not say who it is"
    started = datetime.fromtimestamp(holder.started_at, timezone.utc).strftime("%H:%M:%S UTC")
    return f"pid {holder.pid} on {holder.host}, started {started}: {holder.command!r}"


def _refuse(location: S3Location, holder: LockHolder | None, hint: str) -> RunLockedError:
    return RunLockedError(
        f"another dbsnaplake run is working in {location.s3dir_staging} ({_describe(holder)}); "
        f"two runs on one staging area would undo each other's work. {hint}"
    )


@contextlib.contextmanager
def run_lock(location: S3Location) -> Iterator[None]:
    """Hold the staging area for the block, or raise :class:`RunLockedError` at once."""
    uri = location.state_file(LOCK_FILE)
    if storage.is_s3(uri):
        with _s3_lease(location, uri):
            yield
    else:
        with _local_lock(location, uri):
            yield


@contextlib.contextmanager
def _local_lock(location: S3Location, path: str) -> Iterator[None]:
    import fcntl

    os.makedirs(os.path.dirname(path), exist_ok=True)
    while True:
        f = open(path, "a+")  # noqa: SIM115 - closed below, after the lock is released
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_local(f)
            f.close()
            raise _refuse(location, holder, "Wait for it to finish, or stop it and rerun.") from None
        try:
            same_file = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        f.close()  # the holder removed the file between our open and our lock: lock the new one
    try:
        f.seek(0)
        f.truncate()
        f.write(_holder(uuid.uuid4().hex).to_json().decode())
        f.flush()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)  # before unlocking: whoever locks next, locks a new file
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()


def _read_local(f: IO[str]) -> LockHolder | None:
    f.seek(0)
    return _parse(f.read(), f.name)


def _is_stale(holder: LockHolder | None) -> bool:
    if holder is None:
        return True
    if holder.expires_at < time.time():
        return True
    if holder.host == socket.gethostname():
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return True  # its process is gone: killed, or the machine rebooted
        except PermissionError:
            return False
    return False


class _Lease:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.owner = uuid.uuid4().hex
        self.version: str | None = None
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="dbsnaplake-lease", daemon=True)

    def acquire(self, location: S3Location) -> None:
        body = _holder(self.owner).to_json()
        for _ in range(5):
            if storage.put_if_absent(self.uri, body):
                break
            found = storage.read_versioned(self.uri)
            if found is None:
                continue  # released in between: try to create it again
            holder, version = _parse(found[0], self.uri), found[1]
            if holder is not None and holder.owner == self.owner:
                break  # our create succeeded, its response was lost and the retry saw our own lease
            if not _is_stale(holder):
                assert holder is not None
                expires = datetime.fromtimestamp(holder.expires_at, timezone.utc).strftime("%H:%M:%S UTC")
                raise _refuse(location, holder, f"Wait for it to finish; if it died, its lease expires at {expires}.")
            if storage.replace_if_unchanged(self.uri, body, version):
                break
        self.version = storage.read_versioned(self.uri)[1]  # type: ignore[index]
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            body = _holder(self.owner).to_json()
            with contextlib.suppress(Exception):  # a missed renewal is retried; the lease lasts 4 renewals
                storage.replace_if_unchanged(self.uri, body, self.version)
                found = storage.read_versioned(self.uri)  # ours, even if the answer to our write was lost?
                if found is not None and self._is_ours(found[0]):
                    self.version = found[1]

    def release(self) -> None:
        self._stop.set()
        found = storage.read_versioned(self.uri)
        if found is not None and self._is_ours(found[0]):
            storage.delete(self.uri)

    def _is_ours(self, raw: bytes) -> bool:
        holder = _parse(raw, self.uri)
        return holder is not None and holder.owner == self.owner


@contextlib.contextmanager
def _s3_lease(location: S3Location, uri: str) -> Iterator[None]:
    lease = _Lease(uri)
    lease.acquire(location)
    try:
        yield
    finally:
        lease.release()


def current_holder(location: S3Location) -> LockHolder | None:
    """Who holds the staging area now (for ``dbsnaplake status``), or ``None``."""
    uri = location.state_file(LOCK_FILE)
    if storage.is_s3(uri):
        found = storage.read_versioned(uri)
        holder = _parse(found[0], uri) if found else None
        return holder if holder is not None and not _is_stale(holder) else None
    import fcntl

    if not os.path.exists(uri):
        return None
    with open(uri, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_local(f)
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None
