"""Every name in the store, computed from plain values (roots, group numbers, partitions, time stamps).

``S3Location`` gives the seed's folders of a staging root and a data-lake root; the functions below name the
rest: group manifests, staging and data-lake files, the run's state files, version folders, ``_SUCCESS`` and
``_latest.json``, and the folders of an export's tables. Nothing here reads or writes the store.

Staging (one snapshot of one table)::

    STAGING/manifests/manifest-summary.json + manifest-data.parquet       the snapshot manifest (may live here)
    STAGING/manifests/<kind>/manifest-summary/manifest-summary-<n>.json  a group manifest (kind: snapshot-file-groups,
    STAGING/manifests/<kind>/manifest-data/manifest-data-<n>.parquet       staging-file-groups, partition-file-groups)
    STAGING/manifests/<kind>/manifest-columns/manifest-columns-<n>.parquet  its extra per-file columns (named by the
                                                                        manifest module, :func:`file_columns_uri_for`)
    STAGING/manifests/validate-datalake-result.json
    STAGING/manifests/report.html                                       the run report (dbsnaplake report)
    STAGING/manifests/state/plan.json, plan-compaction.json, run.json, lock.json, <stage>/done-<n>.json, <stage>/failed-<n>.json
    STAGING/datalake/<partition>/group-<n>.parquet                       the staging lake

Data lake: ``DATALAKE/<partition>/part-<g>-<i>.parquet`` and ``DATALAKE/_SUCCESS`` (``--publish historical``), or
``DATALAKE/version=<stamp>/<partition>/...`` and ``DATALAKE/_latest.json`` (``--publish latest``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from dbsnaplake import storage
from dbsnaplake.errors import ConfigError, RecordError

PublishMode = Literal["historical", "latest"]

MANIFESTS_FOLDER = "manifests"
DATALAKE_FOLDER = "datalake"
SNAPSHOT_FILE_GROUPS_FOLDER = "snapshot-file-groups"
STAGING_FILE_GROUPS_FOLDER = "staging-file-groups"
PARTITION_FILE_GROUPS_FOLDER = "partition-file-groups"
MANIFEST_SUMMARY_FOLDER = "manifest-summary"
MANIFEST_DATA_FOLDER = "manifest-data"
VALIDATE_RESULT_FILE = "validate-datalake-result.json"

DATALAKE_FILE = re.compile(r"^part-(\d{5})-(\d{5})\.parquet$")
"""A data-lake file: ``part-<group in partition>-<file>.parquet``."""

FILE_GROUP_KINDS = (SNAPSHOT_FILE_GROUPS_FOLDER, STAGING_FILE_GROUPS_FOLDER, PARTITION_FILE_GROUPS_FOLDER)
STATE_FOLDER = "state"
PLAN_FILE = "plan.json"
PLAN_COMPACTION_FILE = "plan-compaction.json"
RUN_TIMES_FILE = "run.json"
REPORT_FILE = "report.html"
LOCK_FILE = "lock.json"
SUCCESS_FILE = "_SUCCESS"
LATEST_POINTER_FILE = "_latest.json"
VERSION_PREFIX = "version="
STAMP_FORMAT = "%Y_%m_%d_%H_%M_%S"
_GROUP_MANIFEST = re.compile(r"^(?P<staging>.+/)manifests/(?P<kind>[a-z-]+)/manifest-summary/manifest-summary-(?P<n>\d+)\.json$")
_GROUP_MARKER = re.compile(r"^(done|failed)-(\d+)\.json$")
_SNAPSHOT_SEGMENT = re.compile(r"(?:^|/)snapshot=([^/]+)")
VERSION_FOLDER = re.compile(r"^version=(\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2})/")


@dataclass(frozen=True)
class S3Location:
    """Where a pipeline keeps its state and writes its data lake.

    >>> loc = S3Location(
    ...     s3uri_staging="s3://bucket/prefix/staging/mydatabase/mytable/snapshot=2021-01-01T08:30:00Z/",
    ...     s3uri_datalake="s3://bucket/prefix/datalake/mydatabase/mytable/",
    ... )
    >>> loc.s3dir_snapshot_file_group_manifest_summary
    's3://bucket/prefix/staging/mydatabase/mytable/snapshot=2021-01-01T08:30:00Z/manifests/snapshot-file-groups/manifest-summary/'

    Both roots may be local paths; every property then returns a local folder path ending with ``/``.
    """

    s3uri_staging: str
    s3uri_datalake: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "s3uri_staging", storage.as_dir(self.s3uri_staging))
        object.__setattr__(self, "s3uri_datalake", storage.as_dir(self.s3uri_datalake))

    @property
    def s3dir_staging(self) -> str:
        return self.s3uri_staging

    @property
    def s3dir_datalake(self) -> str:
        return self.s3uri_datalake

    @property
    def s3dir_staging_manifest(self) -> str:
        return storage.as_dir(storage.join(self.s3dir_staging, MANIFESTS_FOLDER))

    @property
    def s3path_snapshot_manifest_summary(self) -> str:
        """Where the snapshot manifest may live: ``manifests/manifest-summary.json``."""
        return storage.join(self.s3dir_staging_manifest, "manifest-summary.json")

    @property
    def s3path_snapshot_manifest_data(self) -> str:
        return storage.join(self.s3dir_staging_manifest, "manifest-data.parquet")

    def _group_dir(self, kind: str, sub: str = "") -> str:
        return storage.as_dir(storage.join(self.s3dir_staging_manifest, kind, sub))

    @property
    def s3dir_snapshot_file_group_manifest(self) -> str:
        return self._group_dir(SNAPSHOT_FILE_GROUPS_FOLDER)

    @property
    def s3dir_snapshot_file_group_manifest_summary(self) -> str:
        return self._group_dir(SNAPSHOT_FILE_GROUPS_FOLDER, MANIFEST_SUMMARY_FOLDER)

    @property
    def s3dir_snapshot_file_group_manifest_data(self) -> str:
        return self._group_dir(SNAPSHOT_FILE_GROUPS_FOLDER, MANIFEST_DATA_FOLDER)

    @property
    def s3dir_staging_file_group_manifest(self) -> str:
        return self._group_dir(STAGING_FILE_GROUPS_FOLDER)

    @property
    def s3dir_staging_file_group_manifest_summary(self) -> str:
        return self._group_dir(STAGING_FILE_GROUPS_FOLDER, MANIFEST_SUMMARY_FOLDER)

    @property
    def s3dir_staging_file_group_manifest_data(self) -> str:
        return self._group_dir(STAGING_FILE_GROUPS_FOLDER, MANIFEST_DATA_FOLDER)

    @property
    def s3dir_partition_file_group_manifest(self) -> str:
        return self._group_dir(PARTITION_FILE_GROUPS_FOLDER)

    @property
    def s3dir_partition_file_group_manifest_summary(self) -> str:
        return self._group_dir(PARTITION_FILE_GROUPS_FOLDER, MANIFEST_SUMMARY_FOLDER)

    @property
    def s3dir_partition_file_group_manifest_data(self) -> str:
        return self._group_dir(PARTITION_FILE_GROUPS_FOLDER, MANIFEST_DATA_FOLDER)

    @property
    def s3dir_staging_datalake(self) -> str:
        return storage.as_dir(storage.join(self.s3dir_staging, DATALAKE_FOLDER))

    @property
    def s3path_validate_datalake_result(self) -> str:
        return storage.join(self.s3dir_staging_manifest, VALIDATE_RESULT_FILE)

    @property
    def s3path_report(self) -> str:
        """``manifests/report.html``: the run report (see :mod:`dbsnaplake.report`)."""
        return storage.join(self.s3dir_staging_manifest, REPORT_FILE)

    def group_manifest_summary(self, kind: str, group: int) -> str:
        """``manifests/<kind>/manifest-summary/manifest-summary-<group>.json``."""
        return storage.join(self._group_dir(kind, MANIFEST_SUMMARY_FOLDER), f"manifest-summary-{group}.json")

    def group_manifest_data(self, kind: str, group: int) -> str:
        """``manifests/<kind>/manifest-data/manifest-data-<group>.parquet``."""
        return storage.join(self._group_dir(kind, MANIFEST_DATA_FOLDER), f"manifest-data-{group}.parquet")

    def staging_partition_dir(self, partition_path: str) -> str:
        return storage.as_dir(storage.join(self.s3dir_staging_datalake, partition_path))

    def staging_file(self, partition_path: str, group: int) -> str:
        """``datalake/<partition>/group-<n>.parquet``: one ETL group's rows of one partition."""
        return storage.join(self.s3dir_staging_datalake, partition_path, f"group-{group:06d}.parquet")

    @property
    def s3dir_state(self) -> str:
        """``manifests/state/``: the run's plan, markers and lock (see :mod:`dbsnaplake.ledger`)."""
        return storage.as_dir(storage.join(self.s3dir_staging_manifest, STATE_FOLDER))

    def state_file(self, name: str) -> str:
        return storage.join(self.s3dir_state, name)

    def group_marker(self, stage: str, kind: Literal["done", "failed"], group: int) -> str:
        """``state/<stage>/<kind>-<n>.json``."""
        return storage.join(self.s3dir_state, stage, f"{kind}-{group}.json")


def datalake_file_name(group_in_partition: int, index: int) -> str:
    return f"part-{group_in_partition:05d}-{index:05d}.parquet"


def datalake_file(version_root: str, partition: str, group_in_partition: int, index: int) -> str:
    """``<version folder>/<partition>/part-<g>-<i>.parquet``."""
    return storage.join(version_root, partition, datalake_file_name(group_in_partition, index))


def parse_group_marker(name: str) -> tuple[str, int] | None:
    """``("done", 7)`` for ``done-7.json``; ``None`` for any other name."""
    match = _GROUP_MARKER.match(name)
    return (match[1], int(match[2])) if match else None


@dataclass(frozen=True)
class GroupManifestName:
    """What a group manifest's URI says: its staging root, its kind and its group number."""

    staging: str
    kind: str
    group: int


def parse_group_manifest(uri: str) -> GroupManifestName:
    """``STAGING/manifests/<kind>/manifest-summary/manifest-summary-<n>.json`` → staging, kind, group."""
    match = _GROUP_MANIFEST.match(storage.normalize_uri(uri))
    if match is None or match["kind"] not in FILE_GROUP_KINDS:
        raise RecordError(
            f"{uri} is not a group manifest: expected STAGING/manifests/<snapshot-file-groups|staging-file-groups|"
            "partition-file-groups>/manifest-summary/manifest-summary-<n>.json"
        )
    return GroupManifestName(match["staging"], match["kind"], int(match["n"]))


# ---- versions: where a snapshot's files go, and how readers find the current one ---------------------------------


def version_stamp(moment: datetime) -> str:
    """``2021_01_01_08_30_00``: the seed's ``mytable_YYYY_MM_DD_HH_MM_SS`` suffix."""
    return moment.strftime(STAMP_FORMAT)


def parse_snapshot_time(text: str) -> datetime:
    """An ISO 8601 time (``2021-01-01T08:30:00Z``), as UTC; a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"snapshot time {text!r} is not an ISO 8601 time (2021-01-01T08:30:00Z): set --snapshot-time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def snapshot_time(staging: str, given: str | None) -> datetime:
    """``given`` (``--snapshot-time``), else the staging path's ``snapshot=<ISO time>`` segment, else now."""
    text = given
    if text is None:
        match = _SNAPSHOT_SEGMENT.search(staging)
        text = match.group(1) if match else None
    if text is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    return parse_snapshot_time(text)


def version_root(datalake: str, publish: PublishMode, stamp: str) -> str:
    """Where compaction writes a snapshot's files: the data-lake folder itself (``historical``), or its
    ``version=<stamp>/`` folder (``latest``)."""
    lake = storage.as_dir(datalake)
    if publish == "historical":
        return lake
    return storage.as_dir(storage.join(lake, f"{VERSION_PREFIX}{stamp}"))


def success_file(version_root: str) -> str:
    """``<version folder>/_SUCCESS``: the commit record, written last."""
    return storage.join(version_root, SUCCESS_FILE)


def latest_pointer(datalake: str) -> str:
    """``<data lake>/_latest.json``: names the current version folder (``--publish latest``)."""
    return storage.join(datalake, LATEST_POINTER_FILE)


# ---- the tables of an export --------------------------------------------------------------------------------


def table_location(
    staging: str, datalake: str, database: str, table: str, snapshot_time: str | None, publish: PublishMode = "latest"
) -> S3Location:
    """An export's table: staging ``<staging>/<database>/<table>/snapshot=<time>/``; data lake
    ``<datalake>/<database>/<table>/`` (``--publish latest``) or, for a historical lake per snapshot,
    ``<datalake>/<database>/<table>_YYYY_MM_DD_HH_MM_SS/`` (the seed's two layouts)."""
    snapshot = f"snapshot={snapshot_time}" if snapshot_time else ""
    lake_name = table
    if publish == "historical" and snapshot_time:
        lake_name = f"{table}_{version_stamp(parse_snapshot_time(snapshot_time))}"
    return S3Location(
        s3uri_staging=storage.join(staging, database, table, snapshot),
        s3uri_datalake=storage.join(datalake, database, lake_name),
    )


def is_datalake_file(relative: str) -> bool:
    """Whether a path below a data-lake folder names a file compaction writes."""
    return DATALAKE_FILE.match(storage.base_name(relative)) is not None
