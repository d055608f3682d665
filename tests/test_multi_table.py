"""A run over every table of a source, set up by a TOML file: one data lake per table, flags over the file."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dbsnaplake import storage
from dbsnaplake.api import (
    ConfigError,
    SortKey,
    SourceRunConfig,
    TableSettings,
    load_config,
    read_manifest,
    run_source,
    source_run_config,
    write_source_manifests,
)
from dbsnaplake.config.file import parse_config
from dbsnaplake.frames.transform import apply_transform

from .support.cli import dbsnaplake
from .support.lake import read_lake, same_rows
from .support.rds_fixtures import CUSTOMERS, ORDERS, SNAPSHOT_TIME, write_rds_export

STAMP = "2024_03_01_04_05_06"  # SNAPSHOT_TIME as the seed's mytable_YYYY_MM_DD_HH_MM_SS suffix

YEAR = "SELECT *, CAST(EXTRACT(YEAR FROM created_at) AS VARCHAR) AS year FROM snapshot"
TOML = f"""
source = "{{source}}"
staging = "staging"
datalake = "datalake"
workers = 2

[tables."{ORDERS}"]
partition_by = ["year"]
sort_by = ["updated_at:desc"]
transform = "{YEAR}"
target_file_size = "64KB"
"""


def write_config(folder: Path, source: str, text: str = TOML) -> str:
    path = folder / "dbsnaplake.toml"
    path.write_text(text.replace("{source}", source))
    return str(path)


def frame(table: object) -> pl.DataFrame:
    result = pl.from_arrow(table)  # type: ignore[arg-type]
    assert isinstance(result, pl.DataFrame)
    return result


def test_toml_run_over_an_rds_export(root: str, tmp_path: Path) -> None:
    export = write_rds_export(root)
    config = source_run_config(load_config(write_config(tmp_path, export.root)), {})

    result = run_source(config)

    assert result.ok, result
    assert [run.name for run in result.runs] == [ORDERS, CUSTOMERS]
    orders, customers = result.runs
    lake = str(tmp_path / "datalake")
    assert (
        orders.config.location.s3dir_datalake == f"{lake}/mydb/public.orders_{STAMP}/"
    )  # historical: one per snapshot
    assert orders.config.location.s3dir_staging == f"{tmp_path}/staging/mydb/public.orders/snapshot={SNAPSHOT_TIME}/"
    assert orders.config.manifest_uri.startswith(orders.config.location.s3dir_staging_manifest)
    assert orders.config.partition_by == ("year",) and orders.config.target_file_size == 64 * 1024
    assert orders.config.sort_by == (SortKey("updated_at", descending=True),)
    assert customers.config.partition_by == () and customers.config.transform is None  # no section: as it is
    same_rows(read_lake(orders.config), apply_transform(YEAR, frame(export.orders)), key="order_id")
    same_rows(read_lake(customers.config), frame(export.customers), key="customer_id")
    assert "tables    : 2 of 2 OK" in str(result)


def test_a_failing_table_does_not_stop_the_others(local_root: str) -> None:
    export = write_rds_export(local_root)
    config = SourceRunConfig(
        source=export.root,
        staging=storage.join(local_root, "staging"),
        datalake=storage.join(local_root, "datalake"),
        workers=1,
        tables={ORDERS: TableSettings(transform="SELECT no_such_column FROM snapshot")},
    )

    result = run_source(config)

    assert not result.ok and result.failed == (ORDERS,)
    orders, customers = result.runs
    assert orders.error is not None and "no_such_column" in orders.error
    assert customers.ok and customers.result is not None
    assert customers.result.validation.datalake.records == export.customers.num_rows
    assert f"1 FAILED: {ORDERS}" in str(result)


def test_config_names_a_table_the_source_does_not_have(local_root: str) -> None:
    export = write_rds_export(local_root)
    config = SourceRunConfig(
        source=export.root,
        staging=storage.join(local_root, "staging"),
        datalake=storage.join(local_root, "datalake"),
        tables={"mydb.public.order": TableSettings(partition_by=("year",))},
    )
    with pytest.raises(ConfigError, match=rf"mydb\.public\.order .*its tables: {ORDERS}, {CUSTOMERS}"):
        run_source(config)
    with pytest.raises(ConfigError, match=r"--only .*mydb\.nope"):
        run_source(
            SourceRunConfig(source=export.root, staging=config.staging, datalake=config.datalake, only=("mydb.nope",))
        )


def test_manifest_build_writes_one_manifest_per_table(local_root: str) -> None:
    export = write_rds_export(local_root)
    out = storage.join(local_root, "manifests")

    result = write_source_manifests(export.root, out)

    assert result.kind == "rds-export"
    for table in ("public.orders", "customers"):
        manifest = read_manifest(storage.join(out, "mydb", table, "manifest-summary.json"))
        assert manifest.n_record in (export.orders.num_rows, export.customers.num_rows)


def test_cli_config_with_flags_over_the_file(local_root: str, tmp_path: Path) -> None:
    export = write_rds_export(local_root)
    path = write_config(tmp_path, export.root)

    result = dbsnaplake("run", "--config", path, "--only", CUSTOMERS, "--workers", "1", "--executor", "inline")

    assert result.returncode == 0, result.stderr
    assert f"== {CUSTOMERS}" in result.stdout and ORDERS not in result.stdout
    assert "1 of 1 OK" in result.stdout
    assert not list((tmp_path / "datalake" / "mydb").glob("public.orders*"))
    assert (tmp_path / "datalake" / "mydb" / f"customers_{STAMP}" / "_SUCCESS").exists()


def test_cli_failing_table_exits_non_zero(local_root: str, tmp_path: Path) -> None:
    export = write_rds_export(local_root)
    text = TOML.replace(YEAR, "SELECT no_such_column FROM snapshot")
    result = dbsnaplake("run", "--config", write_config(tmp_path, export.root, text), "--executor", "inline")
    assert result.returncode == 1
    assert f"table(s) {ORDERS} failed" in result.stderr and f"--only {ORDERS}" in result.stderr
    assert "1 of 2 OK" in result.stdout


# ---- the TOML file: every key checked ----------------------------------------------------------------------


def test_unknown_keys_are_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'partition_by' in x\.toml .*per-table settings go in \[tables"):
        parse_config('partition_by = ["year"]', "x.toml")
    with pytest.raises(ConfigError, match=r"'partiton_by' in \[tables\.\"db\.t\"\] \(known: catalog, group_size, keep_nanoseconds, partition_by"):
        parse_config('[tables."db.t"]\npartiton_by = ["year"]', "x.toml")
    with pytest.raises(ConfigError, match=r"'quote' in \[csv\]"):
        parse_config('[csv]\nquote = "\'"', "x.toml")


def test_bad_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match="workers must be a whole number"):
        parse_config('workers = "four"', "x.toml")
    with pytest.raises(ConfigError, match=r"target_file_size"):
        parse_config('[tables."db.t"]\ntarget_file_size = "12 parsecs"', "x.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("source = ", "x.toml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/no/such/dbsnaplake.toml")


def test_file_settings_flags_and_paths() -> None:
    text = """
    source = "exports/orders"
    staging = "s3://bucket/staging/"
    datalake = "/lake"
    target_file_size = "256MB"
    only = "db.orders"
    [csv]
    delimiter = ";"
    header = false
    column_names = ["id", "price"]
    column_types = { id = "int64", price = "decimal(12,2)" }
    [tables."db.orders"]
    partition_by = "year,month"
    sort_by = ["order_time:desc", "id"]
    group_size = 1048576
    """
    file = parse_config(text, "/etc/dbsnaplake/dbsnaplake.toml")
    config = source_run_config(file, {"workers": 3, "datalake": "/other-lake"}, {"transform": "SELECT 1 AS x"})

    assert config.source == "/etc/dbsnaplake/exports/orders"  # relative to the file's folder
    assert (config.staging, config.datalake, config.workers) == ("s3://bucket/staging/", "/other-lake", 3)
    assert config.only == ("db.orders",)
    assert config.csv_delimiter == ";" and config.csv_header is False
    assert config.csv_column_types == (("id", "int64"), ("price", "decimal(12,2)"))
    settings = config.settings_for("db.orders")
    assert settings.target_file_size == 256 * 1024**2
    assert settings.partition_by == ("year", "month") and settings.group_size == 1024**2
    assert settings.sort_by == (SortKey("order_time", descending=True), SortKey("id"))
    assert settings.transform == "SELECT 1 AS x"  # a command-line flag applies to every table
    assert config.settings_for("db.other") == TableSettings(transform="SELECT 1 AS x", target_file_size=256 * 1024**2)


def test_roots_are_required() -> None:
    with pytest.raises(ConfigError, match=r"no staging given: pass --staging or set staging = \"...\" in x\.toml"):
        source_run_config(parse_config('source = "/s"\ndatalake = "/d"', "x.toml"), {})
