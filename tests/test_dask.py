"""The pipeline on a real Dask cluster: ``distributed.LocalCluster`` with worker processes, and a
``dask scheduler`` with two ``dask worker`` processes started here on 127.0.0.1, on local disk and on the S3
server. Results must be identical to the in-process executor's, also when a worker is killed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pyarrow as pa
import pytest

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig, S3Location, make_executor, run_pipeline
from dbsnaplake.errors import ConfigError
from dbsnaplake.layout import STAGING_FILE_GROUPS_FOLDER
from dbsnaplake.ledger import Ledger

from .support.cli import dbsnaplake, stage_options
from .support.lake import lake_files, read_file
from .support.s3_server import free_port, wait_for_port
from .support.snapshots import make_orders_snapshot, orders_config

REPO = Path(__file__).resolve().parent.parent


def lake_tables(config: PipelineConfig) -> dict[str, pa.Table]:
    """Every data-lake file by its path below the root."""
    root = config.location.s3dir_datalake
    return {uri[len(root) :]: read_file(uri) for uri in lake_files(config)}


def assert_same_lake(actual: PipelineConfig, expected: PipelineConfig) -> None:
    got, want = lake_tables(actual), lake_tables(expected)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].equals(want[name]), f"{name} differs"


def elsewhere(config: PipelineConfig, name: str) -> PipelineConfig:
    """The same job with its own staging and data-lake roots."""
    base = config.location.s3dir_staging.split("/staging/")[0]
    location = S3Location(
        s3uri_staging=storage.join(base, name, "staging"), s3uri_datalake=storage.join(base, name, "datalake")
    )
    return replace(config, location=location)


def reference(root: str, n_files: int, **overrides: object) -> PipelineConfig:
    """A snapshot under ``root`` and its lake built in this process (the executor everything is compared to)."""
    manifest = make_orders_snapshot(root, n_files=n_files, rows_per_file=1_500)
    config = orders_config(root, manifest, group_size=100_000, target_file_size=40_000, **overrides)
    run_pipeline(config)
    return config


@pytest.fixture
def dask_cluster() -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (run from the repository, so
    ``tests.support.transforms`` imports); yields the scheduler address and the worker processes."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(REPO), "POLARS_MAX_THREADS": "1"}
    common = {"cwd": str(REPO), "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], **common
    )
    address = f"tcp://127.0.0.1:{port}"
    workers: list[subprocess.Popen[bytes]] = []
    try:
        wait_for_port(port, scheduler)
        for _ in range(2):
            workers.append(
                subprocess.Popen(
                    [str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard"], **common
                )
            )
        wait_for_workers(address, 2)
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            process.terminate()
        for process in [*workers, scheduler]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(n, timeout=60)


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_same_lake(root: str) -> None:
    expected = reference(root, n_files=8)
    config = elsewhere(expected, "dask-local")

    with make_executor("dask-local", 2) as executor:
        result = run_pipeline(config, executor)

    assert result.validation.ok
    assert len(result.plan.group_manifests) > 2
    assert_same_lake(config, expected)


@pytest.mark.slow
def test_run_on_a_dask_scheduler_with_two_worker_processes(
    root: str, dask_cluster: tuple[str, list[subprocess.Popen[bytes]]]
) -> None:
    address, _ = dask_cluster
    manifest = make_orders_snapshot(root, n_files=8, rows_per_file=1_500)
    options = [*stage_options(root, manifest), "--group-size", "100KB"]
    inline = dbsnaplake("run", *options, "--executor", "inline", cwd=str(REPO))
    assert inline.returncode == 0, inline.stderr
    expected = {n: read_file(storage.join(root, "datalake", "db", "orders", n)) for n in names_below(root)}

    storage.delete_folder(storage.join(root, "datalake"))
    on_dask = dbsnaplake("run", *options, "--executor", address.replace("tcp://", "dask://"), cwd=str(REPO))

    assert on_dask.returncode == 0, on_dask.stderr
    assert "validation: OK" in on_dask.stdout
    assert sorted(names_below(root)) == sorted(expected)
    for name, table in expected.items():
        assert read_file(storage.join(root, "datalake", "db", "orders", name)).equals(table)


def names_below(root: str) -> list[str]:
    lake = storage.as_dir(storage.join(root, "datalake", "db", "orders"))
    return [i.uri[len(lake) :] for i in storage.list_files(lake) if i.uri.endswith(".parquet")]


@pytest.mark.slow
def test_a_killed_dask_worker_does_not_change_the_lake(
    local_root: str, dask_cluster: tuple[str, list[subprocess.Popen[bytes]]]
) -> None:
    address, workers = dask_cluster
    expected = reference(local_root, n_files=16, transform="tests.support.transforms:year_month_slowly")
    config = elsewhere(expected, "dask-killed")
    command = [
        *stage_options(local_root, config.manifest_uri),
        "--transform", "tests.support.transforms:year_month_slowly",
        "--group-size", "100KB",
        "--target-file-size", "40000",
        "--staging", config.location.s3dir_staging,
        "--datalake", config.location.s3dir_datalake,
        "--executor", address.replace("tcp://", "dask://"),
    ]  # fmt: skip
    exe = Path(sys.executable).with_name("dbsnaplake")
    run = subprocess.Popen(
        [str(exe), "run", *command], cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    wait_until_groups_done(config, at_least=1, process=run)
    assert run.poll() is None, "the run must still be going when the worker dies"
    victim = psutil.Process(workers[0].pid)
    for process in [*victim.children(recursive=True), victim]:  # the nanny and its worker: gone for good
        process.send_signal(signal.SIGKILL)
    out, err = run.communicate(timeout=300)

    assert run.returncode == 0, err
    assert "validation: OK" in out
    assert_same_lake(config, expected)


def wait_until_groups_done(config: PipelineConfig, at_least: int, process: subprocess.Popen[str]) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if len(Ledger(config.location).group_manifests(STAGING_FILE_GROUPS_FOLDER)) >= at_least:
            return
        assert process.poll() is None, f"the run ended before any group finished: {process.communicate()}"
        time.sleep(0.05)
    raise AssertionError("no ETL group finished within 120 s")


def test_without_dask_installed_the_error_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(ConfigError, match=r"pip install 'dbsnaplake\[dask\]'"):
        make_executor("dask-local", 1)


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dbsnaplake.run.executors.DASK_CONNECT_SECONDS", 1)
    with pytest.raises(ConfigError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:"):
        make_executor(f"dask://127.0.0.1:{free_port()}", 1)


def test_an_unknown_executor_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="dask-local"):
        make_executor("spark", 1)
