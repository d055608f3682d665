"""Compaction tasks: small partitions packed into one task, a partition in one staging file copied as it is (server
side on S3), staging files whose rows came in --sort-by order joined (row groups copied) unless their ranges
overlap, and the lake those make is the lake of every row, validated, that a rerun leaves as it is."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbsnaplake import storage
from dbsnaplake.api import (
    Ledger,
    PipelineConfig,
    RunResult,
    build_manifest,
    compact,
    etl,
    plan,
    plan_compaction,
    read_manifest,
    run_pipeline,
)
from dbsnaplake.demo import orders_table
from dbsnaplake.frames.sorting import is_sorted
from dbsnaplake.ledger import COMPACT
from dbsnaplake.manifest import PARTITION
from dbsnaplake.records import PartitionFileGroup
from dbsnaplake.stages.compact import PartitionSlice, can_copy, in_lake_encoding, staging_footers
from dbsnaplake.stages.etl import STAGING_COMPRESSION, PartitionRows, may_be_whole, staging_codec

from .support.cli import dbsnaplake
from .support.lake import expected_rows, lake_files, read_file, read_lake, same_rows
from .support.snapshots import make_orders_snapshot, orders_config, write_parquet


def test_small_partitions_are_packed_into_few_tasks_and_make_one_file_each(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=6, rows_per_file=1_000)
    config = orders_config(root, manifest, group_size=40_000)  # several ETL groups: partitions in several files
    result = run_pipeline(config)

    headers = [read_manifest(g).header(PartitionFileGroup) for g in result.compaction_plan.group_manifests]
    n_partitions = len(result.validation.partitions)
    assert n_partitions > 20
    assert len(headers) < n_partitions / 4, "small partitions were not packed"
    assert sorted(p for h in headers for p in h.partitions) == sorted(p.partition for p in result.validation.partitions)
    assert result.validation.ok
    same_rows(read_lake(config), expected_rows(config), "order_id")

    version_root = config.location.s3dir_datalake
    written = [(p, f.uri) for r in result.compaction for p, f in r.files_by_partition]
    assert len(written) == n_partitions
    assert all(uri == storage.join(version_root, p, "part-00000-00000.parquet") for p, uri in written)
    assert sorted(uri for _, uri in written) == sorted(lake_files(config))


def test_rerunning_a_packed_group_with_the_stage_command_leaves_the_same_lake(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=500)
    config = orders_config(local_root, manifest, group_size=30_000)
    run_pipeline(config)
    groups = Ledger(config.location).read_compaction_plan()
    assert groups is not None
    packed = next(g for g in groups.group_manifests if read_manifest(g).header(PartitionFileGroup).packed)
    header = read_manifest(packed).header(PartitionFileGroup)
    before = {uri: storage.read_bytes(uri) for uri in lake_files(config)}
    stale = storage.join(config.location.s3dir_datalake, header.packed[1], "part-00000-00001.parquet")
    storage.write_bytes(stale, next(iter(before.values())))  # as a run with another plan could have left

    result = dbsnaplake("compact", "--group-manifest", packed)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["file_partitions"] == list(header.packed)
    assert {uri: storage.read_bytes(uri) for uri in lake_files(config)} == before
    assert dbsnaplake("validate", "--staging", config.location.s3dir_staging).returncode == 0


def test_a_partition_in_one_staging_file_is_copied_not_reencoded(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=3, rows_per_file=1_000)
    snapshot_size = read_manifest(manifest).size
    # one ETL group: a staging file per status, each a sixth of the rows: over half the target, a lake file's
    # worth, so ETL stages it in the lake's codec and compaction copies it
    config = orders_config(root, manifest, partition_by=("status",), target_file_size=snapshot_size // 5)
    planned = plan(config)
    for group in planned.group_manifests:
        etl(group, config)
    staging = {
        partition: uri
        for m, _ in Ledger(config.location).staging_manifests()
        for partition, uri in zip(m.column(PARTITION), m.column("uri"), strict=True)
    }
    compaction = plan_compaction(config)
    results = [compact(g, config) for g in compaction.group_manifests]

    assert sum(r.n_copied for r in results) == len(staging) > 1
    for partition, file in (pf for r in results for pf in r.files_by_partition):
        assert storage.read_bytes(file.uri) == storage.read_bytes(staging[partition])
    result = run_pipeline(config)  # validates and publishes what compaction left
    assert result.validation.ok
    assert len(Ledger(config.location).read_done(COMPACT)) == len(compaction.group_manifests)
    same_rows(read_lake(config), expected_rows(config), "order_id")


def staging_like(root: str, table: pa.Table, compression: str) -> PartitionSlice:
    uri = storage.join(root, "staging", "year=2024", "group-000001.parquet")
    write_parquet(uri, table, compression=compression)
    return PartitionSlice("year=2024", 0, 1, (uri,), (storage.head(uri).size,), (table.num_rows,))


@pytest.mark.parametrize(
    ("compression", "schema_change", "copied"),
    [("zstd", False, True), ("snappy", False, False), ("none", False, False), ("zstd", True, False)],
)
def test_only_a_staging_file_in_the_lake_encoding_is_copied(
    local_root: str, compression: str, schema_change: bool, copied: bool
) -> None:
    table = pa.table({"order_id": pa.array(range(100), pa.int64()), "city": ["x"] * 100})
    lake_schema = table.schema
    if schema_change:  # the lake's schema (unified over every ETL group) is wider than this file's
        lake_schema = lake_schema.append(pa.field("note", pa.string()))
    part = staging_like(local_root, table, compression)
    footers = staging_footers(part, target_size=1024**2)

    assert footers is not None and can_copy(part, target_size=1024**2)
    assert in_lake_encoding(footers, part.counts, lake_schema, "zstd") is copied


def test_a_single_staging_file_over_the_target_band_is_not_copied(local_root: str) -> None:
    table = pa.table({"order_id": pa.array(range(10_000), pa.int64())})
    part = staging_like(local_root, table, "zstd")

    assert can_copy(part, target_size=int(part.size * 1.2))
    assert not can_copy(part, target_size=int(part.size / 1.2))


def test_copy_makes_an_identical_object_replacing_the_target(root: str) -> None:
    source, target = storage.join(root, "a", "x.parquet"), storage.join(root, "b", "y.parquet")
    storage.write_bytes(source, b"new bytes")
    storage.write_bytes(target, b"old")

    storage.copy(source, target)

    assert storage.read_bytes(target) == b"new bytes"
    assert storage.read_bytes(source) == b"new bytes"
    assert [i.uri for i in storage.list_files(storage.join(root, "b"))] == [target]
    with pytest.raises(FileNotFoundError):
        storage.copy(storage.join(root, "a", "missing.parquet"), target)


def test_staging_uses_the_cheap_codec_but_for_a_lake_files_worth_of_a_partition(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=100)
    config = orders_config(local_root, manifest, target_file_size=1_000_000)

    assert staging_codec(config, partition_rows=10, group_rows=100, group_size=1_000_000) == STAGING_COMPRESSION
    assert staging_codec(config, partition_rows=60, group_rows=100, group_size=1_000_000) == config.compression
    # a partition that goes on in the neighbouring group cannot be copied: the cheap codec, however big
    assert staging_codec(config, 60, 100, 1_000_000, may_be_whole=False) == STAGING_COMPRESSION
    # rows that came in --sort-by order may be joined with the partition's other files: the lake's codec when the
    # file may be worth joining (1/32 of the target), the cheap codec for tiny ones (decoded and packed together)
    assert staging_codec(config, 4, 100, 1_000_000, may_be_whole=False, came_in_order=True) == config.compression
    assert staging_codec(config, 2, 100, 1_000_000, may_be_whole=False, came_in_order=True) == STAGING_COMPRESSION


def test_a_partition_at_either_end_of_a_group_is_taken_to_go_on_in_the_next_group() -> None:
    def rows(first: int, last: int) -> PartitionRows:
        return PartitionRows(first_chunk=first, last_chunk=last)

    assert may_be_whole(rows(1, 2), n_chunks=4, n_group=9)  # only in the group's middle chunks
    assert not may_be_whole(rows(0, 2), n_chunks=4, n_group=9)  # in its first chunk: began in the group before
    assert not may_be_whole(rows(1, 3), n_chunks=4, n_group=9)  # in its last chunk: goes on in the group after
    assert may_be_whole(rows(0, 3), n_chunks=4, n_group=1)  # the plan's only group holds every partition whole


@pytest.mark.parametrize("batch_rows", [7, 1_000])  # batches inside a row group, and whole row groups
def test_a_staging_file_streams_the_same_rows_mapped_or_read(local_root: str, batch_rows: int) -> None:
    """Compaction reads a partition's staging files through memory maps when they are small against
    --worker-memory, else with plain reads (a map's pages would count in the worker's memory): the same rows."""
    from dbsnaplake.stages.compact import iter_staging_file

    uri = storage.join(local_root, "staging.parquet")
    table = pa.table({"id": list(range(100)), "s": [f"v{i % 7}" for i in range(100)]})
    pq.write_table(table, uri, row_group_size=30)
    size = storage.head(uri).size
    mapped = list(iter_staging_file(uri, size, table.schema, batch_rows, mapped=True))
    read = list(iter_staging_file(uri, size, table.schema, batch_rows, mapped=False))
    assert pa.concat_tables(read).equals(table) and pa.concat_tables(mapped).equals(table)
    assert [t.num_rows for t in read] == [t.num_rows for t in mapped]
    assert max(t.num_rows for t in read) <= min(batch_rows, 30)


# ---- joining staging files whose rows came in --sort-by order -------------------------------------------------------


def codecs_of(uri: str) -> set[str]:
    metadata = pq.ParquetFile(io.BytesIO(storage.read_bytes(uri))).metadata
    return {metadata.row_group(r).column(c).compression for r in range(metadata.num_row_groups) for c in range(metadata.num_columns)}


def staging_files(config: PipelineConfig) -> list[str]:
    return [uri for m, _ in Ledger(config.location).staging_manifests() for uri in m.column("uri")]


def check_sorted_lake(config: PipelineConfig, result: RunResult) -> None:
    assert result.validation.ok
    for uri in lake_files(config):
        assert is_sorted(read_file(uri), config.sort_by), f"{uri} is not sorted"
    same_rows(read_lake(config), expected_rows(config), "order_id")


def test_a_snapshot_in_key_order_is_staged_in_the_lake_encoding_and_joined_not_reencoded(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=8, rows_per_file=12_000)  # order_time grows with order_id
    size = read_manifest(manifest).size
    # a group per two files, and lake files of a fraction of a partition: partitions span groups and files
    config = orders_config(root, manifest, partition_by=("year",), group_size=size // 4, target_file_size=size // 8)

    result = run_pipeline(config)

    assert {codec for uri in staging_files(config) for codec in codecs_of(uri)} == {"ZSTD"}
    # a partition whose rows all came in one staging file is copied as it is
    assert sum(r.n_joined + r.n_copied for r in result.compaction) == len(lake_files(config)) > 3
    assert sum(r.n_joined for r in result.compaction) > 3
    assert result.validation.files_near_target >= 0.95
    check_sorted_lake(config, result)


def shuffled_snapshot(root: str, order: Callable[[int, int], np.ndarray]) -> str:
    """Orders files whose rows are put in ``order(file, rows)`` (row numbers), with their manifest."""
    rng = np.random.default_rng(3)
    folder = storage.join(root, "snapshot")
    for index in range(4):
        table = orders_table(index * 3_000, 3_000, rng, 12_000)
        write_parquet(storage.join(folder, f"part-{index}.parquet"), table.take(order(index, table.num_rows)))
    manifest = storage.join(root, "manifests", "manifest-summary.json")
    build_manifest(folder, manifest)
    return manifest


def test_rows_out_of_order_are_staged_in_the_cheap_codec_and_merged(local_root: str) -> None:
    manifest = shuffled_snapshot(local_root, lambda index, n: np.random.default_rng(index).permutation(n))
    config = orders_config(local_root, manifest, partition_by=("year",), group_size=read_manifest(manifest).size // 2)

    result = run_pipeline(config)

    assert "ZSTD" not in {codec for uri in staging_files(config) for codec in codecs_of(uri)}  # lz4_raw
    assert sum(r.n_joined for r in result.compaction) == 0
    check_sorted_lake(config, result)


def test_groups_whose_rows_came_in_order_but_overlap_are_merged_not_joined(local_root: str) -> None:
    """Each group's rows came in order (staged in the lake's encoding), but the groups' times interleave (two
    exports of one period): the statistics show the overlap, so compaction merges the files instead of joining."""
    rng = np.random.default_rng(5)
    folder = storage.join(local_root, "snapshot")
    start = np.datetime64("2022-03-01T00:00:00", "us")
    for index in range(2):
        table = orders_table(index * 5_000, 5_000, rng, 10_000)
        seconds = np.arange(5_000) * 2 + index  # even seconds in one file, odd in the other
        times = pa.array(start + seconds.astype("timedelta64[s]"), pa.timestamp("us"))
        write_parquet(storage.join(folder, f"part-{index}.parquet"), table.set_column(2, "order_time", times))
    manifest = storage.join(local_root, "manifests", "manifest-summary.json")
    build_manifest(folder, manifest)
    size = read_manifest(manifest).size  # a group per file, each file a good part of a lake file
    config = orders_config(local_root, manifest, partition_by=("year",), group_size=1, target_file_size=size)

    result = run_pipeline(config)

    assert {codec for uri in staging_files(config) for codec in codecs_of(uri)} == {"ZSTD"}
    assert sum(r.n_joined for r in result.compaction) == 0
    check_sorted_lake(config, result)


def test_rerunning_a_joined_group_writes_the_same_bytes(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=12_000)
    size = read_manifest(manifest).size
    config = orders_config(local_root, manifest, partition_by=(), group_size=size // 2, target_file_size=size // 3)
    result = run_pipeline(config)
    assert sum(r.n_joined for r in result.compaction) > 1
    before = {uri: storage.read_bytes(uri) for uri in lake_files(config)}

    for group in result.compaction_plan.group_manifests:
        again = dbsnaplake("compact", "--group-manifest", group)
        assert again.returncode == 0, again.stderr

    assert {uri: storage.read_bytes(uri) for uri in lake_files(config)} == before
    assert dbsnaplake("validate", "--staging", config.location.s3dir_staging).returncode == 0
