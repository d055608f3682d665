"""Validation proves the rows: a staging or data-lake file changed after it was written (a flipped bit, a row
duplicated in place of another, a row added) fails validation, exit 1, and nothing is published."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbsnaplake import storage
from dbsnaplake.api import read_manifest, write_manifest

from .support.cli import dbsnaplake, stage_options
from .support.snapshots import make_orders_snapshot

Corruption = Callable[[pa.Table], bytes]


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="none", use_dictionary=False)  # values stored plainly, as they are
    return buffer.getvalue()


def flip_a_bit(table: pa.Table) -> bytes:
    """One bit of one stored city name flipped (``Seattle`` → ``Seattld``): the file still reads."""
    city = str(table["city"][0]).encode()
    data = bytearray(parquet_bytes(table))
    data[data.index(city) + len(city) - 1] ^= 1
    return bytes(data)


def duplicate_a_row_in_place_of_another(table: pa.Table) -> bytes:
    return parquet_bytes(pa.concat_tables([table.slice(0, table.num_rows - 1), table.slice(0, 1)]))


def add_a_row(table: pa.Table) -> bytes:
    return parquet_bytes(pa.concat_tables([table, table.slice(0, 1)]))


def corrupt(uri: str, corruption: Corruption) -> None:
    table = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
    storage.write_bytes(uri, corruption(table))


def ok(*args: str) -> str:
    result = dbsnaplake(*args)
    assert result.returncode == 0, f"dbsnaplake {' '.join(args)}: {result.stderr}"
    return result.stdout


def run_stages_until_validation(root: str, corrupt_staging: Corruption | None = None) -> tuple[str, str]:
    """Plan, ETL, (corrupt a staging file,) compact, by stage commands; returns the staging and data-lake folders."""
    manifest = make_orders_snapshot(root, n_files=3, rows_per_file=400)
    options = stage_options(root, manifest)
    staging, datalake = options[options.index("--staging") + 1], options[options.index("--datalake") + 1]
    for group in json.loads(ok("plan", *options, "--output", "json")):
        ok("etl", "--group-manifest", group)
    if corrupt_staging is not None:
        corrupt(largest_file(storage.join(staging, "datalake")), corrupt_staging)
    for group in json.loads(ok("plan-compaction", "--staging", staging, "--output", "json")):
        ok("compact", "--group-manifest", group)
    return staging, datalake


def largest_file(folder: str) -> str:
    files = [i for i in storage.list_files(folder) if i.uri.endswith(".parquet")]
    return max(files, key=lambda i: i.size).uri


def assert_refused_and_not_published(staging: str, datalake: str, *message: str) -> None:
    result = dbsnaplake("validate", "--staging", staging)
    assert result.returncode == 1, result.stderr
    error = result.stderr.strip().splitlines()[-1]  # progress bars come before it on stderr
    assert error.startswith("error:"), result.stderr
    for part in ("the data lake does not match the snapshot", *message):
        assert part in error, error
    assert dbsnaplake("publish", "--staging", staging).returncode == 1
    assert not any(i.uri.endswith("_SUCCESS") for i in storage.list_files(datalake))


@pytest.mark.parametrize(
    ("corruption", "message"),
    [
        pytest.param(flip_a_bit, "the data lake's rows differ from the rows ETL wrote", marks=pytest.mark.slow),
        (duplicate_a_row_in_place_of_another, "the data lake's rows differ from the rows ETL wrote"),
        pytest.param(add_a_row, "records, the data lake", marks=pytest.mark.slow),
    ],
)
def test_a_data_lake_file_changed_after_compaction_fails_validation(
    local_root: str, corruption: Corruption, message: str
) -> None:
    staging, datalake = run_stages_until_validation(local_root)
    ok("validate", "--staging", staging)  # the lake as compacted is proven right
    corrupt(largest_file(datalake), corruption)
    assert_refused_and_not_published(staging, datalake, message, "rerun with --fresh")


@pytest.mark.slow
def test_a_staging_file_changed_after_etl_fails_validation(local_root: str) -> None:
    """Compaction copies the changed rows faithfully; only the fingerprint ETL recorded tells them apart."""
    staging, datalake = run_stages_until_validation(local_root, corrupt_staging=flip_a_bit)
    assert_refused_and_not_published(staging, datalake, "the data lake's rows differ from the rows ETL wrote")


@pytest.mark.slow
def test_an_unreadable_data_lake_file_fails_validation(local_root: str) -> None:
    staging, datalake = run_stages_until_validation(local_root)
    uri = largest_file(datalake)
    data = storage.read_bytes(uri)
    storage.write_bytes(uri, data[: len(data) // 2] + data[-8:])  # the footer's length points into the data
    assert_refused_and_not_published(staging, datalake, "cannot be read")


@pytest.mark.slow
def test_fingerprints_made_by_another_algorithm_fail_validation_saying_so(local_root: str) -> None:
    """Polars' string hash is stable within one Polars version only: fingerprints of another never compare."""
    staging, datalake = run_stages_until_validation(local_root)
    folder = storage.join(staging, "manifests", "staging-file-groups", "manifest-summary")
    summary = next(i.uri for i in storage.list_files(folder) if i.uri.endswith(".json"))
    manifest = read_manifest(summary)
    header = {**manifest.details, "rows_fingerprint_algorithm": "dbsnaplake-rowsum64-v1+polars-0.0.1"}
    write_manifest(summary, manifest.files, header, manifest.data_uri)
    assert_refused_and_not_published(staging, datalake, "were made by dbsnaplake-rowsum64-v1+polars-0.0.1", "--fresh")
