"""``--table-format iceberg``: the run publishes the lake as an Iceberg table, read back here with pyiceberg the way
a user reads it (``load_catalog`` with the catalog's options, then a scan): the same rows as the Parquet lake, the
partition values and types of the files, one commit per snapshot even when the process is killed around it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.table import Table

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig, S3Location, SortKey
from dbsnaplake.errors import ConfigError, StageError
from dbsnaplake.formats.iceberg import (
    FAULT_VARIABLE,
    FINGERPRINT_PROPERTY,
    catalog_properties,
    commit_iceberg,
    default_catalog,
    table_identifier,
)

from .support.lake import expected_rows, lake_files, read_file, read_lake, same_rows
from .support.rest_catalog import rest_catalog_server
from .support.snapshots import make_orders_snapshot

TRANSFORM = (
    "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS INT) AS year, "
    "CASE WHEN EXTRACT(MONTH FROM order_time) = 1 THEN NULL "
    "ELSE LPAD(CAST(EXTRACT(MONTH FROM order_time) AS VARCHAR), 2, '0') END AS month FROM snapshot"
)
"""An int partition column (a Hive path cannot say so) and a string one that is null for January."""
SNAPSHOT_TIME = "2024-01-01T00:00:00Z"


def run_options(root: str, manifest: str, snapshot_time: str = SNAPSHOT_TIME, *extra: str) -> list[str]:
    return [
        "--manifest", manifest,
        "--staging", storage.join(root, "staging", "db", "orders", f"snapshot={snapshot_time}"),
        "--datalake", storage.join(root, "datalake", "db", "orders"),
        "--partition-by", "year,month",
        "--sort-by", "order_time",
        "--transform", TRANSFORM,
        "--target-file-size", "64KB",
        "--workers", "2",
        "--table-format", "iceberg",
        *extra,
    ]  # fmt: skip


def config_of(options: list[str]) -> PipelineConfig:
    """The config the run's options describe, for the lake helpers."""
    value = {options[i]: options[i + 1] for i in range(0, len(options) - 1, 2) if options[i].startswith("--")}
    return PipelineConfig(
        location=S3Location(s3uri_staging=value["--staging"], s3uri_datalake=value["--datalake"]),
        snapshot_manifest=value["--manifest"],
        partition_by=("year", "month"),
        sort_by=(SortKey("order_time"),),
        transform=TRANSFORM,
        table_format="iceberg",
        publish=value.get("--publish", "historical"),  # type: ignore[arg-type]
    )


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("dbsnaplake")
    return subprocess.run(
        [str(exe), "run", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600
    )


def open_catalog(spec: str) -> Catalog:
    """The catalog as a reader opens it: pyiceberg's load_catalog, named ``dbsnaplake`` (the SQL catalog keeps the
    name in its rows), with the S3 server's endpoint."""
    options = {"s3.endpoint": os.environ.get("AWS_ENDPOINT_URL", ""), "s3.region": "us-east-1"}
    if spec == "glue":
        options.update({"type": "glue", "glue.endpoint": os.environ["AWS_ENDPOINT_URL"], "glue.region": "us-east-1"})
    else:
        options.update({"type": "sql", "uri": spec})
    return load_catalog("dbsnaplake", **{k: v for k, v in options.items() if v})


def scanned(table: Table, **scan: Any) -> pl.DataFrame:
    frame = pl.from_arrow(table.scan(**scan).to_arrow())
    assert isinstance(frame, pl.DataFrame)
    return frame


def check_table_equals_lake(table: Table, config: PipelineConfig) -> None:
    """Rows, partition values and column types of the table are the Parquet lake's."""
    rows = scanned(table)
    same_rows(rows, expected_rows(config), key="order_id")
    lake = read_lake(config)  # partition columns from the folder names, as strings
    assert rows.height == lake.height
    file_schema = read_file(lake_files(config)[0]).schema
    scan_schema = table.scan().to_arrow().schema
    for column in ("year", "month", "order_time", "amount"):  # large_string is string to a reader
        assert str(scan_schema.field(column).type).replace("large_", "") == str(file_schema.field(column).type)
    partitions = table.inspect.files().to_pylist()
    assert len(partitions) == len(lake_files(config))
    for entry in partitions:
        values = entry["partition"]
        assert isinstance(values["year"], int), entry["file_path"]
        in_folder = f"year={values['year']}/month={values['month'] or '__HIVE_DEFAULT_PARTITION__'}/"
        assert in_folder in entry["file_path"], (values, entry["file_path"])
    assert any(e["partition"]["month"] is None for e in partitions), "January's files have a null month"
    assert any(e["partition"]["month"] is not None for e in partitions)


def commits_of(table: Table) -> list[str]:
    """The fingerprints of the table's snapshots, oldest first."""
    return [s.summary.get(FINGERPRINT_PROPERTY) if s.summary else None for s in table.snapshots()]  # type: ignore[misc]


# ---- local disk, the default SQLite catalog --------------------------------------------------------------------


@pytest.mark.slow
def test_a_local_run_publishes_an_iceberg_table_in_a_sqlite_catalog_beside_the_lake(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=3, rows_per_file=400)
    options = run_options(local_root, manifest)
    result = run(*options)
    assert result.returncode == 0, result.stderr
    assert "Iceberg table db.orders committed" in result.stdout
    catalog_file = Path(local_root, "datalake", "db", "iceberg-catalog.db")
    assert catalog_file.exists()
    table = open_catalog(f"sqlite:///{catalog_file}").load_table("db.orders")
    config = config_of(options)
    check_table_equals_lake(table, config)
    assert [p.name for p in table.spec().fields] == ["year", "month"]
    assert pq.read_schema(lake_files(config)[0]).names[-2:] == ["year", "month"]  # the files hold them
    assert len(commits_of(table)) == 1 and "2024_01_01_00_00_00" in table.refs()


@pytest.mark.slow
def test_the_parquet_format_keeps_partition_columns_in_the_files_when_asked(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=300)
    options = [*run_options(local_root, manifest)[:-2], "--partition-columns-in-files"]
    result = run(*options)
    assert result.returncode == 0, result.stderr
    config = config_of(options)
    for uri in lake_files(config):
        schema = pq.read_schema(uri)
        assert str(schema.field("year").type) == "int32" and str(schema.field("month").type) == "string"
    assert not Path(local_root, "datalake", "db", "iceberg-catalog.db").exists()


@pytest.mark.parametrize(
    ("spec", "properties"),
    [
        ("sqlite:////tmp/x/c.db", {"type": "sql", "uri": "sqlite:////tmp/x/c.db"}),
        ("rest+https://catalog.example.com/api", {"type": "rest", "uri": "https://catalog.example.com/api"}),
        ("glue", {"type": "glue"}),
        ("my_catalog", {}),
    ],
)
def test_catalog_values_become_pyiceberg_properties(spec: str, properties: dict[str, str]) -> None:
    made = catalog_properties(spec)
    assert {k: v for k, v in made.items() if k in properties} == properties
    assert bool(made) == bool(properties)


def test_a_catalog_value_that_is_none_of_them_is_refused() -> None:
    with pytest.raises(ConfigError, match="--catalog s3://x: not a catalog"):
        catalog_properties("s3://x")


def test_an_s3_lake_defaults_to_a_catalog_file_in_the_home_folder_and_a_local_one_to_a_file_beside_it() -> None:
    assert (
        default_catalog("s3://bucket/datalake/db/orders/") == f"sqlite:///{Path.home()}/.dbsnaplake/iceberg-catalog.db"
    )
    assert default_catalog("/data/datalake/db/orders/") == "sqlite:////data/datalake/db/iceberg-catalog.db"


def test_iceberg_refuses_nanosecond_timestamps_before_running(local_root: str) -> None:
    result = run(*run_options(local_root, "m.json"), "--keep-nanoseconds")
    assert result.returncode == 1
    [message] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "--keep-nanoseconds cannot go with --table-format iceberg" in message


def test_the_table_is_named_after_the_lake_folder_unless_given(local_root: str) -> None:
    config = config_of(run_options(local_root, "m.json", SNAPSHOT_TIME, "--datalake", "/l/My-DB/orders_2024"))
    assert table_identifier(config) == ("my_db", "orders_2024")


@pytest.mark.slow
def test_empty_and_null_partition_values_in_one_folder_are_refused_before_the_commit(local_root: str) -> None:
    """Hive writes month '' and month null to one folder; an Iceberg file has one partition value: refused."""
    manifest = make_orders_snapshot(local_root, n_files=1, rows_per_file=300)
    month = "EXTRACT(MONTH FROM order_time)"
    transform = (
        f"SELECT *, CASE WHEN {month} = 1 THEN NULL WHEN {month} = 2 THEN '' ELSE 'other' END AS month FROM snapshot"
    )
    options = [*run_options(local_root, manifest), "--partition-by", "month", "--transform", transform]
    result = run(*options)
    assert result.returncode == 1
    [message] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "partition column month holds ''" in message and "NULLIF(month, '')" in message, message
    assert not Path(local_root, "datalake", "db", "orders", "_SUCCESS").exists()
    catalog = open_catalog(f"sqlite:///{local_root}/datalake/db/iceberg-catalog.db")
    assert not catalog.table_exists("db.orders")


# ---- the commit on its own, over files written here ----------------------------------------------------------------


def write_version(
    lake: str, version: str, columns: dict[str, list[Any]], partition_by: tuple[str, ...]
) -> dict[str, int]:
    """A version folder of ``lake`` as compaction leaves it: a file per partition, partition columns inside;
    returns the files' sizes by URI."""
    table = pa.table(columns)
    keys = table.select(list(partition_by)).to_pylist() if partition_by else [{}]
    uris = []
    for key in sorted({tuple(k.items()) for k in keys}):
        mask = [all(row[c] == v for c, v in key) for row in table.to_pylist()]
        folder = "/".join(f"{c}={v}" for c, v in key)
        uri = storage.join(lake, f"version={version}", folder, "part-00000-00000.parquet")
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.array(mask)), uri)
        uris.append(uri)
    return {uri: Path(uri).stat().st_size for uri in uris}


def latest_config(root: str, partition_by: tuple[str, ...]) -> PipelineConfig:
    return PipelineConfig(
        location=S3Location(s3uri_staging=storage.join(root, "staging"), s3uri_datalake=storage.join(root, "db", "t")),
        partition_by=partition_by,
        table_format="iceberg",
        publish="latest",
        catalog=f"sqlite:///{root}/catalog.db",
    )


def test_a_later_snapshot_with_a_new_column_widens_the_table(local_root: str) -> None:
    config = latest_config(local_root, ("region",))
    lake = config.location.s3dir_datalake
    first = write_version(lake, "1", {"id": [1, 2], "region": ["eu", "us"]}, ("region",))
    assert commit_iceberg(config, "f1", "2024_01_01_00_00_00", first) == "Iceberg table db.t committed"
    second = write_version(lake, "2", {"id": [3], "region": ["eu"], "note": ["new"]}, ("region",))
    assert commit_iceberg(config, "f2", "2024_02_01_00_00_00", second) == "Iceberg table db.t committed"
    assert commit_iceberg(config, "f2", "2024_02_01_00_00_00", second) == "Iceberg table db.t (already committed)"
    table = open_catalog(f"sqlite:///{local_root}/catalog.db").load_table("db.t")
    assert table.schema().column_names == ["id", "region", "note"]
    assert table.scan().to_arrow().to_pylist() == [{"id": 3, "region": "eu", "note": "new"}]
    assert len(table.scan(snapshot_id=table.refs()["2024_01_01_00_00_00"].snapshot_id).to_arrow()) == 2


def test_an_unpartitioned_lake_is_an_unpartitioned_table_and_a_new_partitioning_is_refused(local_root: str) -> None:
    config = latest_config(local_root, ())
    files = write_version(config.location.s3dir_datalake, "1", {"id": [1, 2], "region": ["eu", "us"]}, ())
    commit_iceberg(config, "f1", "2024_01_01_00_00_00", files)
    table = open_catalog(f"sqlite:///{local_root}/catalog.db").load_table("db.t")
    assert table.spec().is_unpartitioned() and len(table.scan().to_arrow()) == 2
    regions = write_version(config.location.s3dir_datalake, "2", {"id": [1], "region": ["eu"]}, ("region",))
    with pytest.raises(StageError, match=r"db.t is partitioned by \(none\), this run by region"):
        commit_iceberg(latest_config(local_root, ("region",)), "f2", "2024_02_01_00_00_00", regions)


# ---- the S3 server: SQLite and Glue catalogs ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("catalog", ["sqlite", "glue"])
def test_an_s3_run_publishes_an_iceberg_table(s3_server: str, tmp_path: Path, catalog: str) -> None:
    root = f"s3://dbsnaplake-test/iceberg-{catalog}"
    spec = f"sqlite:///{tmp_path}/catalog.db" if catalog == "sqlite" else "glue"
    manifest = make_orders_snapshot(root, n_files=3, rows_per_file=400)
    options = run_options(root, manifest, SNAPSHOT_TIME, "--catalog", spec)
    result = run(*options)
    assert result.returncode == 0, result.stderr
    table = open_catalog(spec).load_table("db.orders")
    assert table.metadata_location.startswith(f"{root}/datalake/db/orders/metadata/")
    check_table_equals_lake(table, config_of(options))


# ---- crashes around the commit ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_killed_before_during_and_after_the_table_commit_commits_once(local_root: str) -> None:
    """Killed (SIGKILL) before the commit, then on the rerun during it (manifests written, catalog not switched),
    then on the next rerun after it: the last rerun leaves exactly one commit and every row once. The commit follows
    _SUCCESS (the Parquet lake is published first: a plan reset never deletes files a table names)."""
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=400)
    spec = f"sqlite:///{local_root}/catalog.db"
    options = run_options(local_root, manifest, SNAPSHOT_TIME, "--catalog", spec)
    config = config_of(options)
    success = storage.join(config.location.s3dir_datalake, "_SUCCESS")
    for point in ("before", "during", "after"):
        killed = run(*options, env={FAULT_VARIABLE: point})
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        assert storage.exists(success)
        tables = open_catalog(spec).list_tables("db") if Path(local_root, "catalog.db").exists() else []
        assert len(tables) == (1 if point == "after" else 0), point

    rerun = run(*options)
    assert rerun.returncode == 0, rerun.stderr
    table = open_catalog(spec).load_table("db.orders")
    assert len(commits_of(table)) == 1
    check_table_equals_lake(table, config)
    assert storage.exists(success)


# ---- --publish latest: an overwrite per snapshot, time travel to the earlier ones -----------------------------------


@pytest.mark.slow
def test_publish_latest_overwrites_and_time_travel_shows_the_first_snapshot(local_root: str) -> None:
    """Through a REST catalog: two snapshots make two commits, the second an overwrite; the table shows the second,
    time travel (by the first's tag) the first. An older snapshot published last leaves the table alone."""
    snapshots = [
        (
            make_orders_snapshot(storage.join(local_root, "a"), n_files=2, rows_per_file=300, seed=1),
            "2024-01-01T00:00:00Z",
        ),
        (
            make_orders_snapshot(storage.join(local_root, "b"), n_files=3, rows_per_file=300, seed=2),
            "2024-02-01T00:00:00Z",
        ),
        (
            make_orders_snapshot(storage.join(local_root, "c"), n_files=1, rows_per_file=300, seed=3),
            "2023-12-01T00:00:00Z",
        ),
    ]
    runs = []
    with rest_catalog_server(f"{local_root}/rest-catalog.db") as url:
        for manifest, stamp in snapshots:
            options = run_options(local_root, manifest, stamp, "--catalog", f"rest+{url}", "--publish", "latest")
            result = run(*options, "--snapshot-time", stamp)
            assert result.returncode == 0, result.stderr
            runs.append(options)
        assert "Iceberg table db.orders stays on the newer version 2024_02_01_00_00_00" in result.stdout
        table = load_catalog("reader", type="rest", uri=url).load_table("db.orders")

    commits = table.snapshots()
    assert len(commits) == 2
    assert commits[1].summary is not None and commits[1].summary.operation.value == "overwrite"
    now = scanned(table)
    assert now.height == 900
    same_rows(now, expected_rows(config_of(runs[1])), key="order_id")
    then = scanned(table, snapshot_id=table.refs()["2024_01_01_00_00_00"].snapshot_id)
    same_rows(then, expected_rows(config_of(runs[0])), key="order_id")
