"""The original dbsnaplake's formats, both ways.

* Manifests: s3manifesto 0.4.1 and 1.0.0 (the original's manifest library), really installed, read every manifest
  a run writes (the snapshot manifest and the three kinds of group manifests), and a run starts from a snapshot
  manifest either of them wrote. The two versions cannot share one environment: each is pip-installed into its own
  folder (cached across runs in pytest's cache, when the cache is on) and runs in a subprocess
  (``tests/support/s3manifesto_script.py``) against the S3 server, as s3manifesto only speaks S3 through boto3.
  They are installed without their dependencies: they run on this environment's Polars.
* ``validate-datalake-result.json``: a script reading the original's keys (``before_*``, ``after_*``,
  ``n_partition``, ``partitions[...]``) reads ours.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig, SnapshotError, SortKey, build_manifest, read_manifest, run_pipeline
from dbsnaplake.demo import orders_table
from dbsnaplake.layout import FILE_GROUP_KINDS
from dbsnaplake.manifest import files_table, write_manifest
from dbsnaplake.original_format import repr_data_size
from dbsnaplake.records import ValidateResult

from .support.lake import expected_rows, read_lake, same_rows
from .support.s3manifesto_script import run_s3manifesto
from .support.snapshots import S3_BUCKET, YEAR_MONTH, make_orders_snapshot, orders_config, write_parquet

VERSIONS = ("0.4.1", "1.0.0")
CORE_COLUMNS = ("uri", "size", "n_record", "etag")


@pytest.fixture(scope="session")
def s3manifesto(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each version's install folder (``pip install --target``, both at once), kept in pytest's cache when it is on."""
    cache = getattr(request.config, "cache", None)
    base = cache.mkdir("s3manifesto") if cache is not None else tmp_path_factory.mktemp("s3manifesto")
    folders = {version: base / version for version in VERSIONS}
    installs = [
        subprocess.Popen(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder), f"s3manifesto=={version}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for version, folder in folders.items()
        if not (folder / "s3manifesto" / "manifest.py").exists()
    ]  # fmt: skip
    for install in installs:
        _, errors = install.communicate(timeout=300)
        assert install.returncode == 0, f"pip could not install s3manifesto: {errors}"
    return folders


def hive_snapshot(root: str) -> str:
    """Orders in ``region=eu/`` and ``region=us/`` folders: the manifest gets a ``hive_partition:region`` column,
    which travels to the snapshot file group manifests (an extra per-file column s3manifesto 1.0.0 cannot hold)."""
    import numpy as np

    rng = np.random.default_rng(3)
    folder = storage.join(root, "snapshot")
    for index, region in enumerate(["eu", "us", "eu", "us"]):
        write_parquet(storage.join(folder, f"region={region}", f"part-{index}.parquet"), orders_table(index * 300, 300, rng, 1_200))
    manifest = storage.join(root, "manifests", "manifest-summary.json")
    build_manifest(folder, manifest)
    return manifest


@pytest.fixture(scope="module")
def s3_run(s3_server: str) -> Iterator[PipelineConfig]:
    """One run on the S3 server, its manifests left in place."""
    root = f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:10]}"
    config = orders_config(root, hive_snapshot(root), partition_by=("region",), transform=YEAR_MONTH)
    assert run_pipeline(config).validation.ok
    yield config


def manifest_summaries(config: PipelineConfig) -> list[str]:
    staging = config.location.s3dir_staging_manifest
    group_summaries = [
        info.uri
        for kind in FILE_GROUP_KINDS
        for info in storage.list_files(storage.join(staging, kind, "manifest-summary"))
    ]
    return [config.manifest_uri, *group_summaries]


@pytest.mark.parametrize("version", VERSIONS)
def test_s3manifesto_reads_every_manifest_a_run_writes(
    version: str, s3manifesto: dict[str, Path], s3_run: PipelineConfig
) -> None:
    summaries = manifest_summaries(s3_run)
    assert {kind for kind in FILE_GROUP_KINDS if any(f"/{kind}/" in uri for uri in summaries)} == set(FILE_GROUP_KINDS)

    theirs = run_s3manifesto(s3manifesto[version], "read", *summaries)

    with_extra_columns = 0
    for uri in summaries:
        ours, read = read_manifest(uri), theirs[uri]
        assert read["manifest"] == ours.data_uri
        assert read["files"] == ours.files.select(list(CORE_COLUMNS)).to_pylist()
        assert (read["size"], read["n_record"]) == (ours.size, ours.n_record)
        assert read["calculated"] == {"size": ours.size, "n_record": ours.n_record}
        assert read["details"] == ours.details
        assert read["fingerprint"]
        with_extra_columns += len(ours.files.column_names) > len(CORE_COLUMNS)
    assert with_extra_columns >= 3  # snapshot groups (hive_partition:region), staging and partition groups


def test_the_originals_listing_of_manifest_data_folders_sees_only_data_files(s3_run: PipelineConfig) -> None:
    """The original reads every object under ``<kind>/manifest-data/`` as a file list: ours hold nothing else."""
    staging = s3_run.location.s3dir_staging_manifest
    for kind in FILE_GROUP_KINDS:
        names = [storage.base_name(i.uri) for i in storage.list_files(storage.join(staging, kind, "manifest-data"))]
        assert names and all(name.startswith("manifest-data-") for name in names), names
    summary = storage.join(staging, "staging-file-groups", "manifest-summary", "manifest-summary-1.json")
    assert read_manifest(summary).details["file_columns"] == storage.join(
        staging, "staging-file-groups", "manifest-columns", "manifest-columns-1.parquet"
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_a_run_starts_from_a_snapshot_manifest_s3manifesto_wrote(
    version: str, s3manifesto: dict[str, Path], s3_server: str
) -> None:
    root = f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:10]}"
    ours = read_manifest(make_orders_snapshot(root, n_files=3, rows_per_file=300))
    written = run_s3manifesto(s3manifesto[version], "write", storage.join(root, "theirs"), *ours.column("uri"))

    config = orders_config(root, written["summary"], partition_by=("year",))
    assert run_pipeline(config).validation.ok

    theirs = read_manifest(written["summary"])
    assert theirs.details == {"database": "shop", "exported_at": "2024-01-01T00:00:00Z", "tables": ["orders"]}
    assert theirs.column("etag") == [etag.strip('"') for etag in theirs.column("etag")]
    assert (version == "0.4.1") == ("exported_by" in theirs.files.column_names)
    same_rows(read_lake(config), expected_rows(config), key="order_id")


def test_a_manifest_whose_columns_file_was_rewritten_alone_is_refused(local_root: str) -> None:
    summary = storage.join(local_root, "manifests", "manifest-summary.json")
    files = files_table(["a.parquet", "b.parquet"], [10, 20], [1, 2], partition=["p=1", "p=2"])
    written = write_manifest(summary, files, {"kind": "example"})
    assert read_manifest(summary).files.equals(written.files)
    columns = written.details["file_columns"]
    assert "/manifests/manifest-columns.parquet" in columns

    write_parquet(columns, pa.table({"partition": ["p=2", "p=1"]}))

    with pytest.raises(SnapshotError, match=r"does not match its files .*manifest-columns\.parquet"):
        read_manifest(summary)


# ---- validate-datalake-result.json -----------------------------------------------------------------------------

REGION = (
    "SELECT *, CASE order_id % 3 WHEN 0 THEN 'a/b' WHEN 1 THEN '50%' ELSE NULL END AS region, "
    "CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year FROM snapshot"
)

ORIGINAL_USERS_SCRIPT = textwrap.dedent(
    """
    import json, sys

    result = json.load(open(sys.argv[1]))
    print("files:", result["before_n_files"], "->", result["after_n_files"])
    print("size:", result["before_total_size_4_human"], "->", result["after_total_size_4_human"])
    assert result["before_total_n_record"] == result["after_total_n_record"], "records lost"
    assert result["n_partition"] == len(result["partitions"])
    total_size = total_files = total_records = 0
    for partition in result["partitions"]:
        name = "/".join(f"{k}={v}" for k, v in partition["data"].items())
        print(name, partition["n_files"], partition["total_size"], partition["total_size_4_human"],
              partition["total_n_record"])
        total_files += partition["n_files"]
        total_size += partition["total_size"]
        total_records += partition["total_n_record"]
    assert (total_files, total_size, total_records) == (
        result["after_n_files"], result["after_total_size"], result["after_total_n_record"])
    """
)


def test_a_script_reading_the_originals_validation_keys_reads_ours(local_root: str, tmp_path: Path) -> None:
    config = orders_config(
        local_root,
        make_orders_snapshot(local_root, n_files=3, rows_per_file=300),
        partition_by=("region", "year"),
        transform=REGION,
        sort_by=(SortKey("order_id"),),
    )
    result = run_pipeline(config).validation
    stored = config.location.s3path_validate_datalake_result
    script = tmp_path / "read_validation.py"
    script.write_text(ORIGINAL_USERS_SCRIPT)

    done = subprocess.run([sys.executable, str(script), stored], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert f"files: 3 -> {result.datalake.files}" in done.stdout
    assert "region=a/b/year=2021" in done.stdout and "region=None/year=2021" in done.stdout
    data: dict[str, Any] = json.loads(storage.read_bytes(stored))
    assert data["before_total_n_record"] == data["after_total_n_record"] == 900
    assert data["before_total_size"] == result.snapshot.bytes
    assert data["before_total_size_4_human"] == repr_data_size(result.snapshot.bytes)
    assert ValidateResult.from_dict(data, stored) == result  # the original's keys are ignored when reading


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"), (100, "100 B"), (1023, "1023 B"), (1024, "1.00 KB"), (1536, "1.50 KB"), (100_000, "97.66 KB"),
        (1_048_575, "1024.00 KB"), (1_048_576, "1.00 MB"), (134_217_728, "128.00 MB"), (1_500_000_000, "1.40 GB"),
        (5 * 1024**4 + 3, "5.00 TB"),
    ],
)  # fmt: skip
def test_sizes_are_shown_as_the_original_shows_them(size: int, shown: str) -> None:
    """Expected values printed by the original's ``dbsnaplake.utils.repr_data_size`` (0.3.2)."""
    assert repr_data_size(size) == shown
