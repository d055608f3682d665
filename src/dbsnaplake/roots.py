"""Checks of the roots a run writes to, made before its first write: the staging area and the data lake must not
overlap the snapshot, and both must be writable (a missing bucket, a read-only disk, a path below a file are found
here, not after the ETL stage).

Overlap is judged by where the snapshot's files are: a root that holds a snapshot file, or lies in a folder that
holds one, is refused. Two snapshot folders that merely share a parent do not make that parent the snapshot's.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Sequence

from dbsnaplake import storage
from dbsnaplake.errors import ConfigError
from dbsnaplake.layout import S3Location

PROBE_PREFIX = "_dbsnaplake-write-probe-"


def _ancestors(folder: str) -> Iterable[str]:
    """``folder`` (ending in ``/``) and every folder above it, deepest first."""
    while True:
        yield folder
        up = storage.parent(folder)
        if up == folder or not up.strip("/") or up in ("s3://", "s3:/"):
            return
        folder = up


def _roots(location: S3Location) -> tuple[tuple[str, str], ...]:
    return (("--staging", location.s3dir_staging), ("--datalake", location.s3dir_datalake))


def check_roots(location: S3Location, file_uris: Sequence[str]) -> None:
    """Refuse a root that holds a snapshot file, or lies in a folder that holds one (the next listing of that
    folder would read the run's own files as data). ``file_uris`` are normalized."""
    folders: dict[str, str] = {}
    for uri in file_uris:
        folders.setdefault(storage.parent(uri), uri)
    for name, root in _roots(location):
        root_dir = storage.as_dir(root)
        for uri in file_uris:  # a plain prefix test, fast for a million files
            if (uri + "/").startswith(root_dir):
                raise ConfigError(f"{name} {root} contains snapshot file {uri}: choose a folder outside the snapshot")
        for folder in _ancestors(root_dir):
            if folder in folders:
                raise ConfigError(
                    f"{name} {root} is inside the snapshot folder {folder} (it holds {folders[folder]}): choose a "
                    "folder outside the snapshot"
                )


def check_outside_source(location: S3Location, source: str) -> None:
    """``run --source``: the whole source folder is listed, so nothing of the run may be written below it."""
    for name, root in _roots(location):
        if storage.is_within(root, source):
            raise ConfigError(
                f"{name} {root} is inside the snapshot folder {storage.as_dir(source)}: the next run would read the "
                "run's own files as data — choose a folder outside the snapshot"
            )


def check_writable(location: S3Location) -> None:
    """Write and delete a small probe object in each root; a refusal is a :class:`ConfigError` naming the option.
    On local disk, folders the probe had to create are removed again: a refused run leaves nothing behind."""
    for name, root in _roots(location):
        probe = storage.join(root, f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}")
        created = [] if storage.is_s3(root) else _missing_folders(os.path.dirname(probe))
        try:
            storage.write_bytes(probe, b"")
            storage.delete(probe)
        except (OSError, storage.StorageError) as exc:
            reason = " ".join((str(exc) if isinstance(exc, storage.StorageError) else exc.strerror or str(exc)).split())
            raise ConfigError(f"{name} {root} is not writable: {reason}") from None
        finally:
            for folder in created:  # deepest first
                with contextlib.suppress(OSError):
                    os.rmdir(folder)


def _missing_folders(folder: str) -> list[str]:
    """The folders of ``folder``'s path that do not exist yet, deepest first."""
    missing = []
    while folder and not os.path.exists(folder):
        missing.append(folder)
        up = os.path.dirname(folder)
        if up == folder:
            break
        folder = up
    return missing


def check_before_writing(location: S3Location, manifest_uri: str) -> None:
    """Every root check of a run over a snapshot manifest: the roots stay clear of the snapshot's files, and both
    are writable. Run before the run's first write (its lock file included)."""
    from dbsnaplake.manifest import URI, read_manifest

    check_roots(location, storage.normalize_uris(read_manifest(manifest_uri).column(URI)))
    check_writable(location)
