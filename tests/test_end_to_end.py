"""The whole pipeline, as a user runs it: on local disk and on the S3 server, inline and in worker processes."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import pytest

from dbsnaplake import storage
from dbsnaplake.api import RunResult, SortKey, parse_partition_path, read_manifest, run_pipeline
from dbsnaplake.frames.sorting import is_sorted
from dbsnaplake.records import PartitionFileGroup

from .support.lake import expected_rows, lake_files, read_file, read_lake, same_rows
from .support.snapshots import make_orders_snapshot, orders_config

T = TypeVar("T")


def test_pipeline_keeps_every_row_sorted_and_partitioned(root: str) -> None:
    manifest = make_orders_snapshot(root)
    config = orders_config(root, manifest, group_size=60_000, target_file_size=40_000)

    result = run_pipeline(config)

    assert result.validation.ok
    assert result.validation.datalake.records == 24_000
    assert len(result.plan.group_manifests) > 1
    same_rows(read_lake(config), expected_rows(config), key="order_id")
    for uri in lake_files(config):
        assert is_sorted(read_file(uri), config.sort_by), f"{uri} is not sorted by order_time"
        relative = uri[len(config.location.s3dir_datalake) :]
        assert list(parse_partition_path(relative.rsplit("/", 1)[0])) == ["year", "month"]


def test_layout_follows_the_seed(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=4, rows_per_file=500)
    config = orders_config(root, manifest)
    run_pipeline(config)

    manifests = config.location.s3dir_staging_manifest
    names = {i.uri[len(manifests) :] for i in storage.list_files(manifests)}
    for kind in ("snapshot-file-groups", "staging-file-groups", "partition-file-groups"):
        assert f"{kind}/manifest-summary/manifest-summary-1.json" in names
        assert f"{kind}/manifest-data/manifest-data-1.parquet" in names
    assert "validate-datalake-result.json" in names
    summary = json.loads(storage.read_bytes(config.location.group_manifest_summary("snapshot-file-groups", 1)))
    assert {"manifest", "size", "n_record"} <= set(summary)
    staging = [i.uri for i in storage.list_files(config.location.s3dir_staging_datalake)]
    assert staging and all("/year=" in u and "/month=" in u for u in staging)
    result = json.loads(storage.read_bytes(config.location.s3path_validate_datalake_result))
    assert result["ok"] is True


def test_a_second_run_gives_an_identical_lake(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=6, rows_per_file=1_000)
    config = orders_config(local_root, manifest, target_file_size=30_000)
    run_pipeline(config)
    first = {u: read_file(u) for u in lake_files(config)}

    run_pipeline(config)
    second = {u: read_file(u) for u in lake_files(config)}

    assert first.keys() == second.keys()
    assert all(first[u].equals(second[u]) for u in first)


def test_unpartitioned_unsorted_without_transform(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=5, rows_per_file=1_000)
    config = orders_config(local_root, manifest, partition_by=(), sort_by=(), transform=None, target_file_size=50_000)
    result = run_pipeline(config)
    assert result.validation.datalake.records == 5_000
    assert all("=" not in u[len(config.location.s3dir_datalake) :] for u in lake_files(config))
    same_rows(read_lake(config), expected_rows(config), key="order_id")


def test_descending_sort_and_callable_transform(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=1_000)
    config = orders_config(
        local_root,
        manifest,
        partition_by=("status",),
        sort_by=(SortKey("amount", descending=True), SortKey("order_id")),
        transform="tests.support.transforms:add_amount_band",
    )
    run_pipeline(config)
    lake = read_lake(config)
    assert "amount_band" in lake.columns
    for uri in lake_files(config):
        assert is_sorted(read_file(uri), config.sort_by)


@pytest.mark.slow
def test_every_executor_gives_the_same_lake(root: str, executor: Executor) -> None:
    manifest = make_orders_snapshot(root, n_files=8, rows_per_file=1_500)
    reference = orders_config(root, manifest, target_file_size=30_000)
    run_pipeline(reference)
    reference_rows = read_lake(reference)

    config = orders_config(
        root,
        manifest,
        target_file_size=30_000,
        location=type(reference.location)(
            s3uri_staging=storage.join(root, "staging2"), s3uri_datalake=storage.join(root, "lake2")
        ),
    )
    result = run_pipeline(config, executor)
    assert result.validation.ok
    same_rows(read_lake(config), reference_rows, key="order_id")


def test_compacted_files_land_within_ten_percent_of_the_target(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=40, rows_per_file=20_000)
    target = 128 * 1024
    config = orders_config(
        local_root,
        manifest,
        partition_by=("year",),
        transform="SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year FROM snapshot",
        target_file_size=target,
    )

    result = run_pipeline(config)

    split = [
        m
        for m in map(read_manifest, result.compaction_plan.group_manifests)
        if m.header(PartitionFileGroup).groups_in_partition > 1
    ]
    assert split, "the biggest partition should be compacted by several groups"
    assert result.validation.files_judged > 100
    assert result.validation.files_near_target >= 0.95
    for uri in lake_files(config):
        assert storage.head(uri).size <= 1.1 * target, f"{uri} is larger than the target"


def test_a_group_past_the_memory_budget_is_spilled_and_merged(local_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny chunks (each file read a row group at a time) and no room for rows in memory: every chunk's rows are
    spilled to local disk as sorted runs and merged at the end; the lake holds the same rows, sorted."""
    from dbsnaplake.stages import etl

    monkeypatch.setattr(etl, "ETL_CHUNK_BYTES", 1_000)
    monkeypatch.setattr(etl, "etl_rows_budget", lambda memory: 1)
    manifest = make_orders_snapshot(local_root, n_files=6, rows_per_file=1_000)
    config = orders_config(local_root, manifest, group_size=10**9)

    result = run_pipeline(config)

    assert result.validation.ok and len(result.plan.group_manifests) == 1
    same_rows(read_lake(config), expected_rows(config), key="order_id")
    for uri in lake_files(config):
        assert is_sorted(read_file(uri), config.sort_by), f"{uri} is not sorted by order_time"


def test_data_files_are_flushed_to_disk_once_per_group_before_its_done_marker(
    local_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging and lake files are not fsynced one by one (thousands of partitions cost a millisecond each): each
    group flushes them with one sync, before its done-marker says they exist."""
    import os

    manifest = make_orders_snapshot(local_root, n_files=4)
    config = orders_config(local_root, manifest, partition_by=("year", "month"))
    state = config.location.s3dir_state
    syncs: list[tuple[int, int]] = []  # (data files under the roots, done-markers) at each sync
    fsynced: list[str] = []

    def count_files(folder: str) -> int:
        return sum(1 for i in storage.list_files(folder) if i.uri.endswith(".parquet"))

    def recording_sync() -> None:
        data = count_files(config.location.s3dir_staging_datalake) + count_files(config.location.s3dir_datalake)
        syncs.append((data, sum(1 for i in storage.list_files(state) if "/done-" in i.uri)))

    def recording_fsync(fd: int) -> None:
        fsynced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    real_fsync = os.fsync
    monkeypatch.setattr(os, "sync", recording_sync)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    result = run_pipeline(config)

    groups = len(result.etl) + len(result.compaction)
    assert len(syncs) == groups  # one per group, each before its marker: the markers seen grow one by one
    assert [markers for _, markers in syncs] == list(range(groups))
    staging_files = sum(e.n_partition for e in result.etl)
    assert syncs[len(result.etl) - 1][0] == staging_files  # ETL's last sync: every staging file written
    data_folders = (config.location.s3dir_staging_datalake, config.location.s3dir_datalake)
    assert fsynced  # manifests and markers are still fsynced one by one
    # a file is fsynced under its temporary name (".group-000001.parquet.<id>.dbsnaplake-tmp"), before the rename
    assert not [p for p in fsynced if p.startswith(data_folders) and ".parquet." in p]


def test_the_read_back_on_workers_proves_what_it_proves_here(local_root: str, executor: Executor) -> None:
    """A run reads the lake back on its workers: the same counts and fingerprints as a read-back in this process,
    and a lake file that lost a row fails the validation, naming its partition."""
    import pyarrow.parquet as pq

    from dbsnaplake.errors import ValidationError
    from dbsnaplake.progress import NoProgress
    from dbsnaplake.run.read_back import ReadBackOver
    from dbsnaplake.stages.validate import LakeFile, read_back_here, validate

    manifest = make_orders_snapshot(local_root, n_files=6)
    config = orders_config(local_root, manifest, partition_by=("year", "month"), workers=2)
    result = run_pipeline(config, executor)
    root = result.plan.version_root
    files = [LakeFile(i.uri, i.size) for i in storage.list_files(root) if i.uri.endswith(".parquet")]
    damaged = files[len(files) // 2]
    pq.write_table(pq.read_table(damaged.uri).slice(1), damaged.uri)

    on_workers = ReadBackOver(executor, 2)(files, NoProgress())
    assert on_workers == read_back_here(files, NoProgress())
    with pytest.raises(ValidationError) as failure:
        validate(config, NoProgress(), ReadBackOver(executor, 2))
    partition = damaged.uri[len(root) :].rsplit("/", 1)[0]
    assert f"partition {partition}: staging holds" in str(failure.value)


@contextlib.contextmanager
def run_in_a_pool(root: str, **overrides: object) -> Iterator[tuple[Executor, RunResult]]:
    """A run over a pool of 2 worker processes, on a small snapshot partitioned by year and month (unless
    ``overrides`` say otherwise); the pool stays open for the test."""
    from dbsnaplake.run.executors import ProcessPool

    manifest = make_orders_snapshot(root, n_files=6)
    config = orders_config(root, manifest, **{"partition_by": ("year", "month"), "workers": 2, **overrides})
    with ProcessPool(2) as pool:
        yield pool, run_pipeline(config, pool)


class _KillsAWorkerFirst(Executor):
    """The run's process pool, whose first task kills the worker process running it (a real SIGABRT), as a worker
    killed by the kernel for its memory would die in the middle of validation."""

    def __init__(self, pool: Executor) -> None:
        self._pool, self._killed = pool, False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if not self._killed:
            self._killed = True
            return self._pool.submit(os.abort)  # type: ignore[arg-type]
        return self._pool.submit(fn, *args, **kwargs)


def test_a_worker_killed_during_the_read_back_is_replaced_and_its_files_read_again(local_root: str) -> None:
    from dbsnaplake.progress import NoProgress
    from dbsnaplake.run.read_back import ReadBackOver
    from dbsnaplake.stages.validate import LakeFile, read_back_here

    with run_in_a_pool(local_root) as (pool, result):
        files = [LakeFile(i.uri, i.size) for i in storage.list_files(result.plan.version_root)]
        files = [f for f in files if f.uri.endswith(".parquet")]
        assert ReadBackOver(_KillsAWorkerFirst(pool), 2, retries=1)(files, NoProgress()) == read_back_here(
            files, NoProgress()
        )
        with pytest.raises(BrokenProcessPool):
            ReadBackOver(_KillsAWorkerFirst(pool), 2, retries=0)(files, NoProgress())


class _CountsSubmits(Executor):
    """The run's pool, counting the tasks submitted and the data-lake files they read back."""

    def __init__(self, pool: Executor) -> None:
        self._pool, self.submitted, self.read_back = pool, 0, []

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted += 1
        self.read_back.extend(args[0] if args and isinstance(args[0], list) else [])
        return self._pool.submit(fn, *args, **kwargs)


def test_files_read_back_as_their_group_is_compacted_are_not_read_again_unless_they_changed(local_root: str) -> None:
    """The read-back starts as each compaction group finishes; validation takes those results for the files its
    listing shows as written, and reads again a file that changed since (here: rewritten with a row less)."""
    import pyarrow.parquet as pq

    from dbsnaplake.progress import NoProgress
    from dbsnaplake.run.read_back import ReadBackOver
    from dbsnaplake.stages.validate import LakeFile, read_back_here

    with run_in_a_pool(local_root) as (pool, result):
        counting = _CountsSubmits(pool)
        read_back = ReadBackOver(counting, 2)
        for group in result.compaction:
            read_back.finished(group)
        written = [LakeFile(f.uri, f.size) for group in result.compaction for f in group.files]
        assert counting.submitted == len(written) > 2

        listed = lambda: sorted(  # noqa: E731
            (LakeFile(i.uri, i.size) for i in storage.list_files(result.plan.version_root) if i.uri.endswith(".parquet")),
            key=lambda f: f.uri,
        )
        assert listed() == sorted(written, key=lambda f: f.uri)
        assert read_back(listed(), NoProgress()) == read_back_here(listed(), NoProgress())
        assert counting.submitted == len(written)  # every file was read early: none again

        for group in result.compaction:
            read_back.finished(group)
        changed = written[0]
        changed_rows = pq.read_metadata(changed.uri).num_rows
        pq.write_table(pq.read_table(changed.uri).slice(1), changed.uri + ".new")  # replaced, as the stages do: an
        os.replace(changed.uri + ".new", changed.uri)  # early read of the old file may still have it open
        submitted = counting.submitted
        again = read_back(listed(), NoProgress())
        assert counting.submitted == submitted + 1  # the changed file only
        assert again == read_back_here(listed(), NoProgress())
        position = [f.uri for f in listed()].index(changed.uri)
        assert again[position].n_record == pq.read_metadata(changed.uri).num_rows == changed_rows - 1


SEVERAL_FILES_A_GROUP = {"partition_by": ("year",), "target_file_size": 64 * 1024}
"""A compaction group per year, each writing several files."""


def test_a_file_published_by_a_compaction_attempt_that_failed_is_read_again(local_root: str) -> None:
    """A lake file is read back as soon as its compaction worker publishes it; if its group then fails, the rerun
    writes the file again: what was read of it early is dropped, and validation reads the file as it is."""
    from dbsnaplake.progress import NoProgress
    from dbsnaplake.run.read_back import ReadBackOver
    from dbsnaplake.stages.validate import LakeFile, read_back_here

    with run_in_a_pool(local_root, **SEVERAL_FILES_A_GROUP) as (pool, result):
        counting = _CountsSubmits(pool)
        read_back = ReadBackOver(counting, 2)
        failed, done = result.compaction[0], result.compaction[1]
        for group in (failed, done):
            read_back.published(group.group, group.files[0].uri, group.files[0].size)
        read_back.failed(failed.group)
        early = len(counting.read_back)
        assert early == 2

        files = [LakeFile(f.uri, f.size) for group in result.compaction for f in group.files]
        assert read_back(files, NoProgress()) == read_back_here(files, NoProgress())
        read_at_validation = counting.read_back[early:]
        taken_early = LakeFile(done.files[0].uri, done.files[0].size)
        assert LakeFile(failed.files[0].uri, failed.files[0].size) in read_at_validation
        assert sorted(read_at_validation, key=lambda f: f.uri) == sorted(
            (f for f in files if f != taken_early), key=lambda f: f.uri
        )


def test_compaction_workers_report_each_lake_file_as_they_publish_it(local_root: str) -> None:
    """Over a process pool, compaction reports every file it writes, before its group is done: the read-back of
    the lake starts on it then."""
    from dbsnaplake.ledger import COMPACT
    from dbsnaplake.progress import NoProgress
    from dbsnaplake.run.groups import run_groups
    from dbsnaplake.stages.compact import compact

    from .support.followers import HeardOf

    with run_in_a_pool(local_root, **SEVERAL_FILES_A_GROUP) as (pool, result):
        manifest = storage.join(local_root, "manifests", "manifest-summary.json")
        config = orders_config(local_root, manifest, **SEVERAL_FILES_A_GROUP)
        follower = HeardOf()
        groups = list(result.compaction_plan.group_manifests)
        again = run_groups(pool, compact, config, groups, NoProgress(), "compact", COMPACT, follower=follower)

        assert len(again) == len(groups) > 1
        for group in again:
            heard = [h for h in follower.heard if h[1] in (group.group, group)]
            published = [(h[2], h[3]) for h in heard if h[0] == "published"]
            assert published == [(f.uri, f.size) for f in group.files]  # each, as it was written
            assert heard[-1] == ("finished", group)


class _RefusesWorkAtFirst(Executor):
    """A pool that refuses the first ``n`` tasks (as a Dask client that lost its scheduler for a moment would)."""

    def __init__(self, pool: Executor, n: int) -> None:
        self._pool, self._refusals = pool, n

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if self._refusals:
            self._refusals -= 1
            raise RuntimeError("the executor is shutting down")
        return self._pool.submit(fn, *args, **kwargs)


def test_an_early_read_back_the_executor_refuses_is_read_when_validation_asks(local_root: str) -> None:
    from dbsnaplake.progress import NoProgress
    from dbsnaplake.run.read_back import ReadBackOver
    from dbsnaplake.stages.validate import LakeFile, read_back_here

    with run_in_a_pool(local_root) as (pool, result):
        read_back = ReadBackOver(_RefusesWorkAtFirst(pool, 1), 2)
        for group in result.compaction:
            read_back.finished(group)  # the first group's files are not started: no error
        files = [LakeFile(f.uri, f.size) for group in result.compaction for f in group.files]
        assert read_back(files, NoProgress()) == read_back_here(files, NoProgress())
