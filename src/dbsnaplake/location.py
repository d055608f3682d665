"""``S3Location``: every folder and file of the seed's layout, for ``s3://`` URIs and local paths alike."""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import storage

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

    def group_manifest_summary(self, kind: str, group: int) -> str:
        """``manifests/<kind>/manifest-summary/manifest-summary-<group>.json``."""
        return storage.join(self._group_dir(kind, MANIFEST_SUMMARY_FOLDER), f"manifest-summary-{group}.json")

    def group_manifest_data(self, kind: str, group: int) -> str:
        """``manifests/<kind>/manifest-data/manifest-data-<group>.parquet``."""
        return storage.join(self._group_dir(kind, MANIFEST_DATA_FOLDER), f"manifest-data-{group}.parquet")

    def staging_partition_dir(self, partition_path: str) -> str:
        return storage.as_dir(storage.join(self.s3dir_staging_datalake, partition_path))


def datalake_file_name(group_in_partition: int, index: int) -> str:
    return f"part-{group_in_partition:05d}-{index:05d}.parquet"


def is_datalake_file(relative: str) -> bool:
    """Whether a path below a data-lake folder names a file compaction writes."""
    return DATALAKE_FILE.match(storage.base_name(relative)) is not None
