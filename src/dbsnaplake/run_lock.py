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
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO, Any

from . import storage
from .errors import RunLockedError
from .location import S3Location
from .state import marker_uri

LOCK_FILE = "lock.json"
LEASE_SECONDS = 60.0
RENEW_SECONDS = 15.0


def _holder(owner: str) -> dict[str, Any]:
    return {
        "owner": owner,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": time.time(),
        "expires_at": time.time() + LEASE_SECONDS,
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200],
    }


def _describe(holder: dict[str, Any]) -> str:
    started = datetime.fromtimestamp(float(holder.get("started_at", 0)), timezone.utc).strftime("%H:%M:%S UTC")
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {started}: {holder.get('command', '?')!r}"


def _refuse(location: S3Location, holder: dict[str, Any], hint: str) -> RunLockedError:
    return RunLockedError(
        f"another dbsnaplake run is working in {location.s3dir_staging} ({_describe(holder)}); "
        f"two runs on one staging area would undo each other's work. {hint}"
    )


@contextlib.contextmanager
def run_lock(location: S3Location) -> Iterator[None]:
    """Hold the staging area for the block, or raise :class:`RunLockedError` at once."""
    uri = marker_uri(location, LOCK_FILE)
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
        f.write(json.dumps(_holder(uuid.uuid4().hex)))
        f.flush()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)  # before unlocking: whoever locks next, locks a new file
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()


def _read_local(f: IO[str]) -> dict[str, Any]:
    f.seek(0)
    try:
        data: dict[str, Any] = json.loads(f.read() or "{}")
    except ValueError:
        return {}
    return data


def _is_stale(holder: dict[str, Any]) -> bool:
    if float(holder.get("expires_at", 0)) < time.time():
        return True
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True  # its process is gone: killed, or the machine rebooted
        except (PermissionError, KeyError, ValueError):
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
        body = json.dumps(_holder(self.owner)).encode()
        for _ in range(5):
            if storage.put_if_absent(self.uri, body):
                break
            found = storage.read_versioned(self.uri)
            if found is None:
                continue  # released in between: try to create it again
            holder, version = json.loads(found[0]), found[1]
            if holder.get("owner") == self.owner:
                break  # our create succeeded, its response was lost and the retry saw our own lease
            if not _is_stale(holder):
                expires = datetime.fromtimestamp(float(holder["expires_at"]), timezone.utc).strftime("%H:%M:%S UTC")
                raise _refuse(location, holder, f"Wait for it to finish; if it died, its lease expires at {expires}.")
            if storage.replace_if_unchanged(self.uri, body, version):
                break
        self.version = storage.read_versioned(self.uri)[1]  # type: ignore[index]
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            body = json.dumps(_holder(self.owner)).encode()
            with contextlib.suppress(Exception):  # a missed renewal is retried; the lease lasts 4 renewals
                storage.replace_if_unchanged(self.uri, body, self.version)
                found = storage.read_versioned(self.uri)  # ours, even if the answer to our write was lost?
                if found is not None and json.loads(found[0]).get("owner") == self.owner:
                    self.version = found[1]

    def release(self) -> None:
        self._stop.set()
        found = storage.read_versioned(self.uri)
        if found is not None and json.loads(found[0]).get("owner") == self.owner:
            storage.delete(self.uri)


@contextlib.contextmanager
def _s3_lease(location: S3Location, uri: str) -> Iterator[None]:
    lease = _Lease(uri)
    lease.acquire(location)
    try:
        yield
    finally:
        lease.release()


def current_holder(location: S3Location) -> dict[str, Any] | None:
    """Who holds the staging area now (for ``dbsnaplake status``), or ``None``."""
    uri = marker_uri(location, LOCK_FILE)
    if storage.is_s3(uri):
        found = storage.read_versioned(uri)
        holder: dict[str, Any] = json.loads(found[0]) if found else {}
        return holder if holder and not _is_stale(holder) else None
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
