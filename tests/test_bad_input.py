"""Bad input: each case gives a one-line error naming the file or option, exit code 1, and no data lake.

A 0-row file is not bad input: it is processed like any other.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbsnaplake import storage
from dbsnaplake.api import build_manifest, read_manifest, write_manifest
from dbsnaplake.manifest import FILES_SCHEMA

from .support.cli import dbsnaplake, stage_options
from .support.snapshots import make_orders_snapshot, write_parquet


def run_cli(root: str, manifest: str, *extra: str) -> tuple[int, str]:
    result = dbsnaplake("run", *stage_options(root, manifest), *extra)
    return result.returncode, result.stderr


def assert_refused(root: str, code: int, stderr: str, *needles: str) -> None:
    assert code == 1, stderr
    message = stderr.strip().splitlines()[-1]  # progress bars come before it on stderr
    assert message.startswith("error:"), stderr
    assert "Traceback" not in message
    for needle in needles:
        assert needle in " ".join(message.split()), f"{needle!r} not in {message!r}"
    lake = storage.join(root, "datalake", "db", "orders")
    assert not storage.list_files(lake), "a data lake was left behind"


def test_missing_manifest(local_root: str) -> None:
    missing = storage.join(local_root, "nowhere", "manifest-summary.json")
    code, err = run_cli(local_root, missing)
    assert_refused(local_root, code, err, "manifest not found", missing, "dbsnaplake manifest build")


def test_manifest_row_whose_file_is_missing(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=3, rows_per_file=100)
    gone = read_manifest(manifest).column("uri")[1]
    storage.delete(gone)
    code, err = run_cli(root, manifest)
    assert_refused(root, code, err, "missing", gone)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_parquet(local_root: str, damage: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=3, rows_per_file=100)
    victim = Path(read_manifest(manifest).column("uri")[2])
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not parquet at all" * 50)
    files = read_manifest(manifest).files.select(FILES_SCHEMA.names)  # as another tool lists them: no footers
    sizes = [
        victim.stat().st_size if u == str(victim) else s
        for u, s in zip(files["uri"].to_pylist(), files["size"].to_pylist(), strict=True)
    ]
    write_manifest(
        manifest, files.set_column(files.schema.get_field_index("size"), "size", pa.array(sizes, pa.int64()))
    )
    code, err = run_cli(local_root, manifest)
    assert_refused(local_root, code, err, str(victim), "not a readable Parquet file")


def test_schema_conflict_names_both_files(local_root: str) -> None:
    folder = storage.join(local_root, "snapshot")
    write_parquet(
        storage.join(folder, "a.parquet"), pa.table({"id": [1, 2], "order_time": pa.array([1, 2], pa.timestamp("us"))})
    )
    write_parquet(
        storage.join(folder, "b.parquet"),
        pa.table({"id": ["x", "y"], "order_time": pa.array([3, 4], pa.timestamp("us"))}),
    )
    manifest = storage.join(local_root, "manifests", "manifest-summary.json")
    build_manifest(folder, manifest)
    code, err = run_cli(local_root, manifest)
    assert_refused(local_root, code, err, "'id'", "a.parquet", "b.parquet")


def test_partition_key_the_transform_did_not_produce(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=100)
    code, err = run_cli(local_root, manifest, "--partition-by", "year,region")
    assert_refused(local_root, code, err, "--partition-by", "'region'", "not produced by the transform")


def test_sort_key_that_does_not_exist(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=100)
    code, err = run_cli(local_root, manifest, "--sort-by", "shipped_at:desc")
    assert_refused(local_root, code, err, "--sort-by", "'shipped_at'")


def test_transform_that_fails(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=100)
    code, err = run_cli(local_root, manifest, "--transform", "SELECT no_such_column FROM snapshot")
    assert_refused(local_root, code, err, "--transform", "no_such_column")


def test_transform_callable_that_returns_the_wrong_type(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=100)
    code, err = run_cli(
        local_root, manifest, "--transform", "tests.support.transforms:returns_a_number", "--partition-by", ""
    )
    assert_refused(local_root, code, err, "returned int", "DataFrame or LazyFrame")


def test_staging_inside_the_snapshot_folder(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=100)
    options = stage_options(local_root, manifest)
    options[options.index("--staging") + 1] = storage.join(local_root, "snapshot", "staging")
    result = dbsnaplake("run", *options)
    assert_refused(local_root, result.returncode, result.stderr, "--staging", "inside the snapshot folder")


def test_datalake_inside_staging(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=100)
    options = stage_options(local_root, manifest)
    staging = options[options.index("--staging") + 1]
    options[options.index("--datalake") + 1] = storage.join(staging, "lake")
    result = dbsnaplake("run", *options)
    assert result.returncode == 1
    assert "must not contain each other" in result.stderr


def test_unknown_file_format(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=100)
    odd = storage.join(local_root, "snapshot", "orders.xlsx")
    storage.write_bytes(odd, b"PK\x03\x04 not a format we read")
    files = read_manifest(manifest).files
    extra = pa.table({"uri": [odd], "size": [storage.head(odd).size], "n_record": pa.array([None], pa.int64())})
    write_manifest(manifest, pa.concat_tables([files.select(["uri", "size", "n_record"]), extra]))
    code, err = run_cli(local_root, manifest)
    assert_refused(local_root, code, err, "unknown file format", "orders.xlsx", "Parquet")


def test_a_zero_row_file_is_processed_like_any_other(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=3, rows_per_file=200)
    first = read_manifest(manifest).column("uri")[0]
    empty = storage.join(local_root, "snapshot", "part-9999.parquet")
    write_parquet(empty, pq.read_table(first).slice(0, 0))
    build_manifest(storage.join(local_root, "snapshot"), manifest)
    code, err = run_cli(local_root, manifest)
    assert code == 0, err
