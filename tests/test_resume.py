"""Resume, retries, failure summaries, status, run locks and atomic publishing (issue 4), on local disk and S3.

The crash matrix (real processes killed at random points) is in ``test_crash.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from dbsnaplake import storage
from dbsnaplake.api import (
    ConfigError,
    InlineExecutor,
    NoProgress,
    RunLockedError,
    SnapshotError,
    TransformError,
    latest_root,
    list_versions,
    plan_snapshot,
    remove_old_versions,
    run_etl_group,
    run_pipeline,
)
from dbsnaplake.layout import LATEST_POINTER_FILE as LATEST_POINTER
from dbsnaplake.layout import parse_group_manifest
from dbsnaplake.progress import Report
from dbsnaplake.run.groups import run_groups
from dbsnaplake.run.lock import run_lock
from dbsnaplake.run.status import run_status

from .support.cli import dbsnaplake, stage_options
from .support.followers import HeardOf
from .support.lake import expected_rows, lake_files, read_file, read_lake, same_rows
from .support.snapshots import make_orders_snapshot, orders_config
from .support.transforms import FAIL_FLAG


def test_a_rerun_skips_the_groups_an_earlier_run_finished(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=8, rows_per_file=500)
    config = orders_config(root, manifest, group_size=30_000, target_file_size=20_000)
    plan = plan_snapshot(config)
    assert len(plan.group_manifests) >= 4
    for uri in plan.group_manifests[:2]:  # an earlier run finished two groups, then died
        run_etl_group(config, uri)

    result = run_pipeline(config)

    assert result.skipped["plan"] == 1
    assert result.skipped["etl"] == 2
    assert len(result.etl) == len(plan.group_manifests) - 2
    assert "etl 2 of" in str(result)
    same_rows(read_lake(config), expected_rows(config), key="order_id")


def test_a_finished_run_reruns_as_a_no_op(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=500)
    config = orders_config(local_root, manifest)
    run_pipeline(config)
    before = {u: storage.head(u).size for u in lake_files(config)}

    again = run_pipeline(config)

    assert again.etl == () and again.compaction == ()
    assert again.published is None and "already published" in str(again)
    assert {u: storage.head(u).size for u in lake_files(config)} == before


def test_changed_settings_plan_again(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=500)
    config = orders_config(local_root, manifest, publish="latest", snapshot_time="2024-01-01T00:00:00Z")
    run_pipeline(config)
    other = orders_config(
        local_root, manifest, publish="latest", snapshot_time="2024-02-01T00:00:00Z", partition_by=("year",)
    )
    result = run_pipeline(other)
    assert result.skipped["plan"] == 0 and result.skipped["etl"] == 0
    assert set(read_lake(other).columns) >= {"year", "month"}  # month is a column now, not a folder


def flaky_worker(uri: str, config: object, report: object = None) -> str:
    """Fails with an OSError on its first call per group (remembered in a file beside the manifest)."""
    seen = Path(uri + ".seen")
    if not seen.exists():
        seen.write_text("1")
        raise OSError(f"connection reset while processing {uri}")
    return uri


def always_failing_worker(uri: str, config: object, report: object = None) -> str:
    raise OSError(f"S3 is down for {uri}")


def test_failed_groups_are_retried_with_backoff(local_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dbsnaplake.run.groups.BACKOFF_SECONDS", 0.01)
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=200)
    config = orders_config(local_root, manifest, group_size=10_000)
    groups = plan_snapshot(config).group_manifests

    done = run_groups(InlineExecutor(), flaky_worker, config, groups, NoProgress(), "flaky", "etl")

    assert sorted(done) == sorted(groups)


def test_a_group_that_keeps_failing_stops_the_run_with_a_summary(
    local_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dbsnaplake.run.groups.BACKOFF_SECONDS", 0.01)
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=200)
    config = orders_config(local_root, manifest, group_size=10_000, retries=2)
    groups = plan_snapshot(config).group_manifests

    with pytest.raises(Exception) as raised:
        run_groups(InlineExecutor(), always_failing_worker, config, groups, NoProgress(), "down", "etl")

    message = str(raised.value)
    assert f"{len(groups)} of {len(groups)} groups failed" in message
    assert "(3 attempts): OSError: S3 is down" in message
    status = run_status(config.location.s3dir_staging)
    assert status.stages[0].failed == len(groups)
    assert "S3 is down" in status.stages[0].errors[1]


def publishing_flaky_worker(uri: str, config: object, report: Report | None = None) -> str:
    """Publishes a file (its size: the attempt) on each call per group, and fails after the first call's."""
    seen = Path(uri + ".seen")
    attempt = 2 if seen.exists() else 1
    assert report is not None, "the in-line executor offers a report queue"
    report.published(uri + ".out", attempt)
    if attempt == 1:
        seen.write_text("1")
        raise OSError(f"connection reset while processing {uri}")
    return uri


def test_a_follower_hears_of_files_published_and_of_the_failed_attempt_that_published_them(
    local_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What follows a stage (validation's read-back) drops what it started on the files of a failed attempt: the
    rerun publishes them again."""
    monkeypatch.setattr("dbsnaplake.run.groups.BACKOFF_SECONDS", 0.01)
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=200)
    config = orders_config(local_root, manifest, group_size=10_000)
    groups = plan_snapshot(config).group_manifests
    follower = HeardOf()

    run_groups(InlineExecutor(), publishing_flaky_worker, config, groups, NoProgress(), "flaky", "etl", follower=follower)

    assert len(groups) > 1
    for uri in groups:
        group = parse_group_manifest(uri).group
        assert [heard for heard in follower.heard if heard[1] in (group, uri)] == [
            ("published", group, uri + ".out", 1),
            ("failed", group),
            ("published", group, uri + ".out", 2),
            ("finished", uri),
        ]


def test_a_failing_group_keeps_the_others_work_and_a_rerun_after_the_fix_completes(
    root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "broken"
    flag.write_text("the transform is broken")
    monkeypatch.setenv(FAIL_FLAG, str(flag))
    manifest = make_orders_snapshot(root, n_files=6, rows_per_file=1_000)
    config = orders_config(
        root, manifest, group_size=40_000, transform="tests.support.transforms:year_month_failing_on_some_files"
    )

    with pytest.raises(TransformError) as raised:
        run_pipeline(config)
    assert "cannot transform the file starting at order 0" in str(raised.value)
    status = run_status(config.location.s3dir_staging)
    etl = status.stages[0]
    assert etl.failed >= 1 and etl.done >= 1 and etl.done + etl.failed == etl.planned
    assert not status.published
    assert all("cannot transform" in e for e in etl.errors.values())
    assert not storage.exists(storage.join(config.location.s3dir_datalake, "_SUCCESS"))

    flag.unlink()  # the user fixes the cause
    result = run_pipeline(config)

    assert result.skipped["etl"] == etl.done
    same_rows(read_lake(config), expected_rows(config), key="order_id")
    assert run_status(config.location.s3dir_staging).stages[0].failed == 0


def test_status_command_reports_each_stage_as_json(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=500)
    options = stage_options(local_root, manifest)
    assert dbsnaplake("run", *options).returncode == 0
    staging = options[options.index("--staging") + 1]

    shown = dbsnaplake("status", "--staging", staging, "--output", "json")

    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["published"] is True and status["validated"] is True
    etl, compact = status["stages"]
    assert etl["stage"] == "etl" and etl["done"] == etl["planned"] and etl["records"] == 2_000
    assert compact["done"] == compact["planned"] and compact["records"] == 2_000
    text = dbsnaplake("status", "--staging", staging)
    assert "groups done" in text.stdout


def test_a_second_run_on_the_same_staging_area_is_refused(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=2, rows_per_file=100)
    config = orders_config(root, manifest)
    with run_lock(config.location):
        with pytest.raises(RunLockedError) as raised:
            run_pipeline(config)
        assert "another dbsnaplake run is working in" in str(raised.value)
        assert f"pid {os.getpid()}" in str(raised.value)
    run_pipeline(config)  # released: the next run proceeds


@pytest.mark.slow
def test_two_concurrent_cli_runs_one_refused_the_other_finishes(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=8, rows_per_file=500)
    options = [*stage_options(root, manifest), "--transform", "tests.support.transforms:year_month_slowly"]
    first = subprocess.Popen(
        [str(Path(sys.executable).with_name("dbsnaplake")), "run", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    staging = options[options.index("--staging") + 1]
    deadline = time.time() + 60
    while run_status(staging).running is None:
        assert time.time() < deadline and first.poll() is None, "the first run never took the staging area"
        time.sleep(0.05)

    second = dbsnaplake("run", *options)

    assert second.returncode == 1
    assert "another dbsnaplake run is working in" in second.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert "validation: OK" in out


def test_a_stale_s3_lease_of_a_dead_process_is_taken_over(s3_server: str) -> None:
    root = f"s3://dbsnaplake-test/stale-lease-{time.time_ns()}"
    manifest = make_orders_snapshot(root, n_files=2, rows_per_file=100)
    config = orders_config(root, manifest)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lease = {"owner": "crashed", "host": os.uname().nodename, "pid": int(dead.stdout), "expires_at": time.time() + 600}
    storage.write_bytes(
        storage.join(config.location.s3dir_staging_manifest, "state", "lock.json"), json.dumps(lease).encode()
    )

    assert run_pipeline(config).validation.ok


def test_a_changed_snapshot_file_is_refused(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=3, rows_per_file=300)
    config = orders_config(local_root, manifest)
    plan_snapshot(config)
    changed = storage.join(local_root, "snapshot", "part-0001.parquet")
    with open(changed, "ab") as f:
        f.write(b"appended after the manifest was written")

    with pytest.raises(SnapshotError) as raised:
        run_pipeline(config, fresh=False)
    assert "part-0001.parquet changed after the manifest was written" in str(raised.value)


def test_a_published_historical_snapshot_is_never_rewritten(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=3, rows_per_file=300)
    run_pipeline(orders_config(local_root, manifest))
    other = orders_config(local_root, manifest, partition_by=("year",))

    with pytest.raises(ConfigError) as raised:
        run_pipeline(other)
    assert "holds a published snapshot, which is never rewritten" in str(raised.value)


def test_latest_mode_switches_the_pointer_and_removes_old_versions(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=3, rows_per_file=300)
    stamps = ["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"]
    for stamp in stamps:
        config = orders_config(root, manifest, publish="latest", snapshot_time=stamp, partition_by=("year",))
        run_pipeline(config, fresh=True)
        assert latest_root(config.location.s3dir_datalake).endswith(f"version={stamp[:10].replace('-', '_')}_00_00_00/")
    lake = config.location.s3dir_datalake
    assert [v.current for v in list_versions(lake)] == [False, False, True]
    same_rows(read_lake(config), expected_rows(config), key="order_id")

    removed = remove_old_versions(lake, keep=2)

    assert [v.stamp for v in removed] == ["2024_01_01_00_00_00"]
    assert [v.stamp for v in list_versions(lake)] == ["2024_02_01_00_00_00", "2024_03_01_00_00_00"]
    same_rows(read_lake(config), expected_rows(config), key="order_id")


def test_an_older_snapshot_never_replaces_a_newer_one(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=100)
    newer = orders_config(local_root, manifest, publish="latest", snapshot_time="2024-05-01T00:00:00Z")
    run_pipeline(newer)
    older = orders_config(local_root, manifest, publish="latest", snapshot_time="2024-04-01T00:00:00Z")
    result = run_pipeline(older, fresh=True)
    assert result.published is not None and not result.published.pointer_moved
    assert "2024_05_01" in (latest_root(newer.location.s3dir_datalake) or "")
    assert "_latest.json stays on the newer version 2024_05_01_00_00_00" in str(result.published)


def test_a_rerun_switches_the_pointer_a_crash_after_the_commit_left_unswitched(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=100)
    first = orders_config(local_root, manifest, publish="latest", snapshot_time="2024-04-01T00:00:00Z")
    run_pipeline(first)
    before_second = storage.read_bytes(storage.join(first.location.s3dir_datalake, LATEST_POINTER))
    second = orders_config(local_root, manifest, publish="latest", snapshot_time="2024-05-01T00:00:00Z")
    run_pipeline(second, fresh=True)
    lake = second.location.s3dir_datalake
    pointer = storage.join(lake, LATEST_POINTER)
    storage.write_bytes(pointer, before_second)  # as if killed between _SUCCESS and the switch
    assert "2024_04_01" in (latest_root(lake) or "")

    run_pipeline(second)

    assert "2024_05_01" in (latest_root(lake) or "")


@pytest.mark.slow
def test_a_reader_never_sees_two_snapshots_mixed(root: str) -> None:
    """Publish snapshot A, then publish B in another process while a reader keeps reading the lake the way the
    README says (follow ``_latest.json``, read that version). Every read is all of A or all of B."""
    first = make_orders_snapshot(storage.join(root, "a"), n_files=6, rows_per_file=1_000, seed=1)
    second = make_orders_snapshot(storage.join(root, "b"), n_files=8, rows_per_file=1_000, seed=2)
    lake = storage.join(root, "lake", "orders")
    common = ["--datalake", lake, "--publish", "latest", "--partition-by", "year", "--workers", "2"]
    staged = [
        ["--staging", storage.join(root, "staging", n), "--manifest", m] for n, m in (("a", first), ("b", second))
    ]
    assert dbsnaplake("run", *staged[0], *common, "--snapshot-time", "2024-01-01T00:00:00Z",
                      "--transform", "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year FROM snapshot").returncode == 0  # fmt: skip

    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_forever() -> None:
        while not stop.is_set():
            try:
                version = latest_root(lake)
                assert version is not None
                files = [i.uri for i in storage.list_files(version) if i.uri.endswith(".parquet")]
                seen.append(sum(read_file(u).num_rows for u in files))
            except BaseException as exc:  # report in the main thread
                errors.append(exc)
                return

    reader = threading.Thread(target=read_forever)
    reader.start()
    try:
        publish_b = dbsnaplake("run", *staged[1], *common, "--snapshot-time", "2024-02-01T00:00:00Z",
                               "--transform", "tests.support.transforms:year_month_slowly")  # fmt: skip
        time.sleep(0.5)
    finally:
        stop.set()
        reader.join()
    assert publish_b.returncode == 0, publish_b.stderr
    assert not errors, errors[0]
    assert set(seen) <= {6_000, 8_000}, f"a read saw a mix: {sorted(set(seen))}"
    assert seen[0] == 6_000 and seen[-1] == 8_000
    pointer = json.loads(storage.read_bytes(storage.join(lake, LATEST_POINTER)))
    assert pointer["version"] == "2024_02_01_00_00_00"
    assert pl.DataFrame({"n": seen})["n"].is_sorted()  # never back from B to A


def test_a_rerun_rebuilds_data_lake_files_removed_since(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=500)
    config = orders_config(local_root, manifest)
    run_pipeline(config)
    storage.delete_folder(config.location.s3dir_datalake)  # someone cleared the data lake

    result = run_pipeline(config)

    assert result.skipped["etl"] == len(result.plan.group_manifests)  # staging was kept: ETL is not redone
    assert result.skipped["compact"] == 0 and result.published is not None
    same_rows(read_lake(config), expected_rows(config), key="order_id")


@pytest.mark.slow
def test_ctrl_c_stops_at_once_and_a_rerun_resumes(local_root: str) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group: orchestrator and workers."""
    manifest = make_orders_snapshot(local_root, n_files=12, rows_per_file=500)
    options = [*stage_options(local_root, manifest), "--transform", "tests.support.transforms:year_month_slowly"]
    options += ["--group-size", "20KB"]
    run = subprocess.Popen(
        [str(Path(sys.executable).with_name("dbsnaplake")), "run", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    staging = options[options.index("--staging") + 1]
    deadline = time.time() + 120
    while not (run_status(staging).stages and run_status(staging).stages[0].done >= 1):
        assert time.time() < deadline and run.poll() is None, "no ETL group finished"
        time.sleep(0.05)

    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=30)

    assert run.returncode == 130
    assert "interrupted: rerun the same command to resume" in err
    rerun = dbsnaplake("run", *options)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed" in rerun.stdout and "validation: OK" in rerun.stdout
    config = orders_config(local_root, manifest, transform="tests.support.transforms:year_month_slowly")
    same_rows(read_lake(config), expected_rows(config), key="order_id")
