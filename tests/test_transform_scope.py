"""``--transform-scope group``: the transform sees a whole snapshot file group as one frame (logic across rows, such
as dropping duplicates within a group), groups sized to fit the worker's memory, and a group that cannot fit
refused at plan, before anything is written."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from dbsnaplake import storage
from dbsnaplake.api import SortKey, build_manifest, read_manifest, run_pipeline
from dbsnaplake.demo import orders_table
from dbsnaplake.records import SnapshotStats
from dbsnaplake.stages import etl as etl_stage
from dbsnaplake.stages.plan import choose_group_size

from .support.cli import dbsnaplake, stage_options
from .support.lake import read_lake
from .support.snapshots import make_orders_snapshot, orders_config, write_parquet

GROUP = "--transform-scope"


@pytest.mark.parametrize(("scope", "rows_seen"), [("group", 1_000), ("chunk", 500)])
def test_the_transform_sees_each_whole_group_as_one_frame(
    local_root: str, monkeypatch: pytest.MonkeyPatch, scope: str, rows_seen: int
) -> None:
    monkeypatch.setattr(etl_stage, "ETL_CHUNK_BYTES", 1)  # chunk scope: a chunk per file (files are read whole)
    manifest = make_orders_snapshot(local_root, n_files=6, rows_per_file=500)
    two_files = 2 * max(read_manifest(manifest).column("size"))
    config = orders_config(
        local_root,
        manifest,
        transform="tests.support.transforms:count_rows_seen",
        transform_scope=scope,
        partition_by=(),
        group_size=two_files,
        executor="inline",  # in this process, where the chunk size is patched
    )

    result = run_pipeline(config)

    assert result.validation.ok
    assert len(result.plan.group_manifests) == 3
    lake = read_lake(config)
    assert lake.height == 3_000
    assert lake["rows_seen"].unique().to_list() == [rows_seen]  # group: its group's 2 x 500 rows; chunk: its file's


def write_versions(root: str) -> str:
    """Orders 0-999, then a later export of orders 500-1,499 with new amounts: the same key twice in one group."""
    import numpy as np

    rng = np.random.default_rng(3)
    first = orders_table(0, 1_000, rng, 1_500)
    second = orders_table(500, 1_000, rng, 1_500)
    second = second.set_column(
        second.schema.get_field_index("amount"), "amount", pa.compute.add(second["amount"], 1000.0)
    )
    folder = storage.join(root, "snapshot")
    write_parquet(storage.join(folder, "part-0000.parquet"), first)
    write_parquet(storage.join(folder, "part-0001.parquet"), second)
    manifest = storage.join(root, "manifests", "manifest-summary.json")
    build_manifest(folder, manifest)
    return manifest


def test_a_group_level_dedup_keeps_one_row_per_key(local_root: str) -> None:
    manifest = write_versions(local_root)
    config = orders_config(
        local_root,
        manifest,
        transform="tests.support.transforms:last_version_of_each_order",
        transform_scope="group",
        partition_by=(),
        sort_by=(SortKey("order_id"),),
    )

    result = run_pipeline(config)

    assert result.validation.ok
    lake = read_lake(config).sort("order_id")
    assert lake["order_id"].to_list() == list(range(1_500))
    later = lake.filter(pl.col("order_id") >= 500)["amount"]
    assert (later >= 1000.0).all()  # the later export's version of each order


def test_a_group_that_cannot_fit_the_worker_memory_is_refused_at_plan(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=1, rows_per_file=40_000)
    staging = storage.join(local_root, "staging")
    big_file = read_manifest(manifest).column("uri")[0]

    result = dbsnaplake("plan", *stage_options(local_root, manifest), GROUP, "group", "--worker-memory", "320MB")

    assert result.returncode == 1, result.stderr
    assert big_file in result.stderr and "does not fit --worker-memory 320" in result.stderr
    assert "--transform-scope chunk" in result.stderr
    assert not storage.list_files(staging)  # nothing written


def test_group_scope_sizes_groups_smaller_for_the_same_memory() -> None:
    stats = SnapshotStats(
        n_file=1_000,
        size=100 * 1024**3,
        n_record=None,
        min_file_size=1,
        median_file_size=100 * 1024**2,
        max_file_size=1024**3,
        in_memory_ratio=3.0,
    )
    chunk = choose_group_size(stats, workers=2, memory_per_worker=4 * 1024**3)
    group = choose_group_size(stats, workers=2, memory_per_worker=4 * 1024**3, transform_scope="group")

    assert group.size < chunk.size
    assert "12 x 3.0 in memory" in group.reason
