"""``dbsnaplake ddl`` as a user meets it: the statements for each dialect over a published lake, partition columns
typed as the plan made them and last; a folder with nothing published refused in one line; a lake committed by an
earlier release (no schema in ``_SUCCESS``) still described, its partition columns as strings. Spark runs the
printed DDL in ``test_ddl_spark.py``."""

from __future__ import annotations

from dbsnaplake import storage
from dbsnaplake.api import run_pipeline
from dbsnaplake.ledger import read_commit, write_commit
from dbsnaplake.records import Commit

from .support.cli import dbsnaplake
from .support.snapshots import make_orders_snapshot, orders_config
from .support.typed_lake import typed_transform

TRANSFORM = typed_transform(before="2021-04-01")


def published_historical_lake(root: str) -> str:
    manifest = make_orders_snapshot(root, n_files=1, rows_per_file=800)
    config = orders_config(root, manifest, transform=TRANSFORM, sort_by=())
    run_pipeline(config)
    return config.location.s3dir_datalake


def test_each_dialect_declares_the_partition_columns_with_their_planned_types(local_root: str) -> None:
    lake = published_historical_lake(local_root)

    athena = dbsnaplake("ddl", "--datalake", lake, "--database", "analytics")
    assert athena.returncode == 0, athena.stderr
    assert athena.stdout.startswith("CREATE EXTERNAL TABLE `analytics`.`orders` (\n  `order_id` bigint,\n")
    assert "  `we``ird, col` string\n)\nPARTITIONED BY (\n  `year` int,\n  `month` string\n)\n" in athena.stdout
    assert f"STORED AS PARQUET\nLOCATION 'file://{lake}';\n\nMSCK REPAIR TABLE `analytics`.`orders`;\n" in athena.stdout

    trino = dbsnaplake("ddl", "--datalake", lake, "--dialect", "trino", "--table", "Orders")
    assert trino.returncode == 0, trino.stderr
    assert '  "we`ird, col" varchar,\n  "year" integer,\n  "month" varchar\n)\nWITH (' in trino.stdout
    assert "partitioned_by = ARRAY['year', 'month']" in trino.stdout
    assert "CALL system.sync_partition_metadata(CURRENT_SCHEMA, 'Orders', 'ADD');" in trino.stdout


def test_nothing_published_is_refused_in_one_line(local_root: str) -> None:
    result = dbsnaplake("ddl", "--datalake", storage.join(local_root, "nothing"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "nothing is published at" in result.stderr and "publish the lake first" in result.stderr


def test_a_commit_without_a_schema_declares_partition_columns_as_strings(local_root: str) -> None:
    lake = published_historical_lake(local_root)
    commit = read_commit(lake)
    assert commit is not None and commit.partition_by == ("year", "month")
    earlier = Commit(
        commit.version, commit.fingerprint, commit.published_at, commit.n_file, commit.n_record, commit.files
    )
    write_commit(lake, earlier)

    result = dbsnaplake("ddl", "--datalake", lake, "--dialect", "spark")
    assert result.returncode == 0, result.stderr
    assert "  `year` string,\n  `month` string\n)\nUSING PARQUET\nPARTITIONED BY (`year`, `month`)\n" in result.stdout
