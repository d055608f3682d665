"""``--table-format delta``: the published lake is a Delta table that deltalake (delta-rs) reads back with the Parquet
lake's rows, partition values and types; one commit per snapshot, never two, whatever crashes and reruns happen."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from dbsnaplake import storage
from dbsnaplake.api import ConfigError, PipelineConfig, S3Location, run_pipeline
from dbsnaplake.formats.delta import delta_partition_value

from .support.cli import dbsnaplake, stage_options
from .support.lake import lake_files, read_file, read_lake, same_rows
from .support.snapshots import YEAR_MONTH, make_orders_snapshot, orders_config

DELTA = ("--table-format", "delta")
SPECIAL = "a/b%c d=e ü€"
"""A partition value with every character the Hive folder name escapes or a URI must encode."""
SPECIAL_TRANSFORM = (
    "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS INTEGER) AS year, CASE WHEN order_id % 4 = 0 THEN "
    f"'{SPECIAL}' WHEN order_id % 4 = 1 THEN 'x%2Fy' WHEN order_id % 4 = 2 THEN NULL ELSE 'plain' END AS k "
    "FROM snapshot"
)
COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def delta_options(uri: str) -> dict[str, str]:
    """What a user passes deltalake to reach the test's S3 server (credentials come from the AWS environment)."""
    if not storage.is_s3(uri):
        return {}
    return {"AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"], "AWS_ALLOW_HTTP": "true"}


def delta_table(uri: str, version: int | None = None) -> DeltaTable:
    return DeltaTable(uri.rstrip("/"), version=version, storage_options=delta_options(uri))


def delta_rows(uri: str, version: int | None = None) -> pl.DataFrame:
    frame = pl.from_arrow(delta_table(uri, version).to_pyarrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def commit_versions(table_uri: str) -> list[int]:
    """The versions the Delta log holds, from its commit files."""
    log = storage.join(table_uri, "_delta_log")
    found = [COMMIT_FILE.match(storage.base_name(i.uri)) for i in storage.list_files(log)]
    return sorted(int(m.group(1)) for m in found if m)


def commit_paths(table_uri: str, action: str = "add", version: int = 0) -> list[str]:
    """The paths of one kind of action in one commit, as the Delta log spells them (percent-encoded)."""
    raw = storage.read_bytes(storage.join(table_uri, "_delta_log", f"{version:020d}.json"))
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    return [line[action]["path"] for line in lines if action in line]


def run_delta(root: str, manifest: str, *extra: str) -> subprocess.CompletedProcess[str]:
    result = dbsnaplake("run", *stage_options(root, manifest), *DELTA, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def delta_config(root: str, manifest: str, **overrides: object) -> PipelineConfig:
    return orders_config(root, manifest, table_format="delta", **overrides)


def file_types(config: PipelineConfig) -> pa.Schema:
    """The data columns' types as the Parquet lake's files hold them."""
    return read_file(lake_files(config)[0]).schema


@pytest.mark.slow  # the CLI in a subprocess: ~12 s here
def test_a_run_publishes_a_delta_table_with_the_lakes_rows_and_types(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=3, rows_per_file=400)
    result = run_delta(root, manifest, "--executor", "inline")  # no worker processes: a quicker test
    config = delta_config(root, manifest, target_file_size=64 * 1024)
    lake = config.location.s3dir_datalake
    assert f"Delta table {lake.rstrip('/')} created (version 0)" in result.stdout
    rows = delta_rows(lake)
    same_rows(rows, read_lake(config), key="order_id")
    read_types = delta_table(lake).to_pyarrow_table().schema
    for field in file_types(config):
        assert read_types.field(field.name).type == field.type, field
    assert rows.schema["year"] == pl.String and rows.schema["month"] == pl.String  # the transform makes strings
    assert delta_table(lake).metadata().partition_columns == ["year", "month"]

    assert run_pipeline(config).published is None
    assert commit_versions(lake) == [0]
    assert delta_table(lake).transaction_version("dbsnaplake") == 20240101000000


def test_partition_values_with_special_characters_and_types_read_back(root: str) -> None:
    """Hive folder names keep their %XX escapes; the Delta log names them percent-encoded (a literal % as %25), so
    delta-rs and Spark (which decodes each path once, as a URI) find the stored file, with the right value."""
    manifest = make_orders_snapshot(root, n_files=2, rows_per_file=200)
    config = delta_config(root, manifest, partition_by=("k", "year"), transform=SPECIAL_TRANSFORM)
    run_pipeline(config)
    lake = config.location.s3dir_datalake
    rows = delta_rows(lake)
    assert rows.schema["year"] == pl.Int32 and rows.schema["k"] == pl.String
    by_value = dict(rows.group_by("k").len().iter_rows())
    assert set(by_value) == {SPECIAL, "x%2Fy", None, "plain"}
    assert all(n == 100 for n in by_value.values())
    parquet_lake = read_lake(config).with_columns(pl.col("year").cast(pl.Int32))
    same_rows(rows, parquet_lake, key="order_id")

    stored = {i.uri[len(lake) :] for i in storage.list_files(lake) if i.uri.endswith(".parquet")}
    logged_raw = commit_paths(lake)
    logged = {urllib.parse.unquote(p) for p in logged_raw}
    assert logged == stored  # what a URI decoder (Spark's new Path(new URI(path))) makes of each logged path
    assert any("%252F" in p and "%2525" in p for p in logged_raw)  # the folder's literal %2F and %25, encoded


def test_publish_latest_overwrites_and_keeps_history(local_root: str) -> None:
    """Two snapshots published --publish latest: the table shows the second; version 0 still shows the first."""
    lake = storage.join(local_root, "lake", "orders")
    by_year = "SELECT *, EXTRACT(YEAR FROM order_time) AS year FROM snapshot"

    def publish_latest(name: str, manifest: str, stamp: str) -> str | None:
        location = S3Location(s3uri_staging=storage.join(local_root, "staging", name), s3uri_datalake=lake)
        config = delta_config(local_root, manifest, location=location, publish="latest", snapshot_time=stamp,
                              partition_by=("year",), transform=by_year)  # fmt: skip
        published = run_pipeline(config).published
        assert published is not None
        return published.table

    first = make_orders_snapshot(storage.join(local_root, "a"), n_files=2, rows_per_file=300, seed=1)
    second = make_orders_snapshot(storage.join(local_root, "b"), n_files=2, rows_per_file=600, seed=2)
    assert publish_latest("a", first, "2024-01-01T00:00:00Z") == f"Delta table {lake} created (version 0)"
    assert publish_latest("b", second, "2024-02-01T00:00:00Z") == f"Delta table {lake} at version 1"
    assert commit_versions(lake) == [0, 1]
    current, original = delta_rows(lake), delta_rows(lake, version=0)
    assert current.height == 1_200 and original.height == 600
    assert current["order_id"].sort().to_list() == list(range(1_200))
    assert [h["operation"] for h in delta_table(lake).history()] == ["WRITE", "CREATE TABLE"]
    assert all(p.startswith("version=2024_02_01_00_00_00/") for p in commit_paths(lake, "add", 1))
    assert sorted(commit_paths(lake, "remove", 1)) == sorted(commit_paths(lake, "add", 0))

    assert publish_latest("c", first, "2023-12-01T00:00:00Z") is None  # an older snapshot published late
    assert commit_versions(lake) == [0, 1]  # never moves the table back, as _latest.json does not


def test_a_later_snapshot_may_change_the_columns(local_root: str) -> None:
    """--publish latest: the overwrite commit carries the new snapshot's schema (a column added); version 0 keeps
    the old one."""
    lake = storage.join(local_root, "lake", "orders")
    manifest = make_orders_snapshot(storage.join(local_root, "a"), n_files=1, rows_per_file=200)
    for name, stamp, transform in (
        ("a", "2024-01-01T00:00:00Z", "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year FROM snapshot"),
        ("b", "2024-02-01T00:00:00Z", "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year, 'new' AS extra "
         "FROM snapshot"),
    ):  # fmt: skip
        location = S3Location(s3uri_staging=storage.join(local_root, "staging", name), s3uri_datalake=lake)
        run_pipeline(delta_config(local_root, manifest, location=location, publish="latest", snapshot_time=stamp,
                                  partition_by=("year",), transform=transform))  # fmt: skip
    assert delta_rows(lake)["extra"].unique().to_list() == ["new"]
    assert "extra" not in delta_rows(lake, version=0).columns


def test_other_partition_columns_are_refused_before_publishing(local_root: str) -> None:
    """An overwrite commit cannot change the table's partition columns: the snapshot is refused before its
    _SUCCESS, so the Parquet lake and the Delta table both stay on the previous snapshot."""
    lake = storage.join(local_root, "lake", "orders")
    manifest = make_orders_snapshot(storage.join(local_root, "a"), n_files=1, rows_per_file=200)

    def config(name: str, stamp: str, partition_by: tuple[str, ...]) -> PipelineConfig:
        location = S3Location(s3uri_staging=storage.join(local_root, "staging", name), s3uri_datalake=lake)
        return delta_config(local_root, manifest, location=location, publish="latest", snapshot_time=stamp,
                            partition_by=partition_by, transform=YEAR_MONTH)  # fmt: skip

    run_pipeline(config("a", "2024-01-01T00:00:00Z", ("year",)))
    message = (
        f"--partition-by month differs from the Delta table {lake}'s partition columns (year), which a snapshot "
        "cannot change: keep them, or publish to a new --datalake"
    )
    with pytest.raises(ConfigError) as refused:
        run_pipeline(config("b", "2024-02-01T00:00:00Z", ("month",)))
    assert str(refused.value) == message
    assert not storage.exists(storage.join(lake, "version=2024_02_01_00_00_00", "_SUCCESS"))
    assert commit_versions(lake) == [0]


@pytest.mark.parametrize(
    ("text", "arrow_type", "expected"),
    [
        ("2021", pa.int32(), "2021"),
        ("01", pa.string(), "01"),
        (None, pa.int64(), None),
        ("2021-01-01 08:30:00", pa.timestamp("us"), "2021-01-01 08:30:00.000000"),
        ("2021-01-01 10:30:00+02:00", pa.timestamp("us", "UTC"), "2021-01-01 08:30:00.000000"),
    ],
)
def test_partition_values_as_the_delta_protocol_writes_them(text: str | None, arrow_type: pa.DataType,
                                                            expected: str | None) -> None:  # fmt: skip
    assert delta_partition_value(text, pa.field("k", arrow_type)) == expected


# ---- crashes around the commit ---------------------------------------------------------------------------------


def test_a_crash_before_the_commit_is_completed_by_a_rerun(local_root: str) -> None:
    """Killed after _SUCCESS, before the Delta commit: the lake is published, the table not yet; a rerun commits
    it once."""
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=300)
    config = delta_config(local_root, manifest)
    run_pipeline(config)
    lake = config.location.s3dir_datalake
    storage.delete_folder(storage.join(lake, "_delta_log"))  # the state that crash leaves
    assert run_pipeline(config).published is None  # the lake was published: the rerun completes the table only
    assert commit_versions(lake) == [0]
    same_rows(delta_rows(lake), read_lake(config), key="order_id")


def test_a_commit_cut_off_half_way_leaves_the_previous_table(local_root: str) -> None:
    """delta-rs writes a commit to a temporary file, then links it to its version's name if absent: killed between
    the two, the temporary file is all there is, readers ignore it, and the rerun commits the version once."""
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=300)
    config = delta_config(local_root, manifest)
    run_pipeline(config)
    lake = config.location.s3dir_datalake
    log = Path(lake) / "_delta_log"
    commit = (log / f"{0:020d}.json").read_bytes()
    (log / f"{0:020d}.json").unlink()
    (log / "_commit_5a0c7ab0-0000-4000-8000-000000000000.json.tmp").write_bytes(commit[: len(commit) // 2])
    with pytest.raises(Exception, match="No files in log segment"):
        delta_table(lake)  # no table yet: the state before the commit
    run_pipeline(config)
    assert commit_versions(lake) == [0]
    same_rows(delta_rows(lake), read_lake(config), key="order_id")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.02, 0.1, 0.3])
def test_killed_around_the_commit_then_rerun_makes_one_commit(tmp_path: Path, delay: float) -> None:
    """SIGKILL the run ``delay`` seconds after _SUCCESS appears (before, during or after the Delta commit): the
    table is absent or whole, and the rerun leaves exactly one commit with every row."""
    root = str(tmp_path)
    manifest = make_orders_snapshot(root, n_files=2, rows_per_file=300)
    config = delta_config(root, manifest, target_file_size=64 * 1024)
    lake = config.location.s3dir_datalake
    command = [str(Path(sys.executable).with_name("dbsnaplake")), "run", *stage_options(root, manifest), *DELTA]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    success = Path(lake) / "_SUCCESS"
    deadline = time.time() + 120
    while not success.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.001)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert commit_versions(lake) in ([], [0])
    if commit_versions(lake):
        assert delta_rows(lake).height == 600  # whole, never part of the files
    run_delta(root, manifest)
    assert commit_versions(lake) == [0]
    same_rows(delta_rows(lake), read_lake(config), key="order_id")
