"""The crash matrix: a real ``dbsnaplake run`` is killed with SIGKILL (a worker process, or the orchestrator)
at a random point of a chosen stage, then the same command is run again. Every trial must end with exactly the
rows of a clean run: the committed file list equal to a clean run's, validation passing, no debris.

The stage running is read from the state the run keeps in the staging area, so each kill lands in the stage it
targets; the delay within the stage is random (seeded). A killed worker must not even need a rerun: the pool
replaces the dead process and the group is retried.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig
from dbsnaplake.layout import SUCCESS_FILE as SUCCESS_MARKER

from .support.cli import stage_options
from .support.lake import expected_rows, read_lake, same_rows
from .support.snapshots import S3_BUCKET, make_orders_snapshot, orders_config

TRANSFORM = "tests.support.transforms:year_month_a_little_slowly"
WORKER_STAGES = ("etl", "compact")
ORCHESTRATOR_STAGES = ("plan", "etl", "plan-compaction", "compact", "publish")
TRIALS = [("worker", s) for s in WORKER_STAGES] + [("orchestrator", s) for s in ORCHESTRATOR_STAGES]
SLOW_SEEDS = 35  # 5 trials of each of the 7 (target, stage) pairs
QUICK_TRIALS = [(0, "worker", "etl"), (1, "orchestrator", "compact"), (2, "orchestrator", "plan")]
STAGE_SECONDS = {"plan": 0.3, "etl": 0.8, "plan-compaction": 0.1, "compact": 0.5, "publish": 0.05}


def manifest_of(root: str) -> str:
    return storage.join(root, "manifests", "manifest-summary.json")


JOINING = ("--partition-by", "year", "--target-file-size", "300KB")
"""Options under which compaction joins staging files (rows in time order, files a good part of a lake file)."""


def options(root: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The CLI's test options, with a transform slow enough to hit and small groups and files (later flags win)."""
    small = ["--transform", TRANSFORM, "--group-size", "40KB", "--target-file-size", "16KB"]
    return [*stage_options(root, manifest_of(root)), *small, *extra]


def config_of(root: str) -> PipelineConfig:
    return orders_config(root, manifest_of(root), transform=TRANSFORM)


def command(root: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [str(Path(sys.executable).with_name("dbsnaplake")), "run", *options(root, extra)]


def env() -> dict[str, str]:
    """This process's environment as it is now (the S3 server fixture sets AWS_*), plus stack dumps on SIGABRT."""
    return {**os.environ, "PYTHONFAULTHANDLER": "1"}


def run_to_end(cmd: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run a command; if it hangs, have it print every thread's stack (faulthandler) and fail with that."""
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        out, err = process.communicate()
        pytest.fail(f"hung for {timeout} s; stacks:\n{err[-8000:]}")
    return subprocess.CompletedProcess(cmd, process.returncode, out, err)


def stage_now(config: PipelineConfig) -> str:
    """Which stage the run is in, from the markers it writes in ``manifests/state/``."""
    state = storage.join(config.location.s3dir_staging_manifest, "state")
    if storage.exists(storage.join(config.location.s3dir_datalake, SUCCESS_MARKER)):
        return "done"
    if not storage.exists(storage.join(state, "plan.json")):
        return "plan"
    if not storage.exists(storage.join(state, "plan-compaction.json")):
        return "plan-compaction" if _all_done(state, "etl", config) else "etl"
    return "publish" if storage.exists(config.location.s3path_validate_datalake_result) else "compact"


def _all_done(state: str, stage: str, config: PipelineConfig) -> bool:
    plan = json.loads(storage.read_bytes(storage.join(state, "plan.json")))
    done = [i for i in storage.list_files(storage.join(state, stage)) if "/done-" in i.uri]
    return len(done) == len(plan["group_manifests"])


def worker_processes(run: subprocess.Popen[str]) -> list[psutil.Process]:
    try:
        children = psutil.Process(run.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if "resource_tracker" not in " ".join(_cmdline(p))]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


@dataclass
class Outcome:
    killed: bool
    first_exit: int
    stage_seen: str
    stderr: str = ""


def kill_during(
    root: str, target: str, stage: str, rng: random.Random, extra: tuple[str, ...] = (), within: float | None = None
) -> Outcome:
    """Start a run, wait for ``stage``, wait a random part of it (of ``within`` seconds, or of the stage's usual
    length), SIGKILL ``target``; return when it exited."""
    config = config_of(root)
    run = subprocess.Popen(
        command(root, extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
        start_new_session=True,
    )
    killed, seen = False, "?"
    try:
        deadline = time.time() + 120
        while run.poll() is None and time.time() < deadline:
            seen = stage_now(config)
            if seen == stage:
                break
            if seen != "plan" and ORCHESTRATOR_STAGES.index(stage) < ORCHESTRATOR_STAGES.index(
                seen if seen in ORCHESTRATOR_STAGES else "publish"
            ):
                break  # the stage went by between two looks: kill now, somewhere later
            time.sleep(0.003)
        time.sleep(rng.uniform(0, STAGE_SECONDS[stage] if within is None else within))
        if run.poll() is None:
            if target == "orchestrator":
                run.send_signal(signal.SIGKILL)
                killed = True
            else:
                workers = worker_processes(run)
                if workers:
                    rng.choice(workers).send_signal(signal.SIGKILL)
                    killed = True
        try:  # returns once every process holding its output is gone: orphaned workers must exit too
            _, stderr = run.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            run.send_signal(signal.SIGABRT)
            pytest.fail(f"the run, or its orphaned workers, hung after the kill: {worker_processes(run)}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)  # whatever is left of the session
    return Outcome(killed, run.returncode, seen, stderr[-2000:])


def committed_files(root: str) -> list[dict[str, object]]:
    commit = json.loads(storage.read_bytes(storage.join(config_of(root).location.s3dir_datalake, SUCCESS_MARKER)))
    return list(commit["files"])


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    root = str(tmp_path_factory.mktemp("clean"))
    make_orders_snapshot(root, n_files=8, rows_per_file=600)
    finished = run_to_end(command(root))
    assert finished.returncode == 0, finished.stderr
    same_rows(read_lake(config_of(root)), expected_rows(config_of(root)), key="order_id")
    return committed_files(root)


def crash_trial(root: str, seed: int, target: str, stage: str, clean: list[dict[str, object]]) -> None:
    make_orders_snapshot(root, n_files=8, rows_per_file=600)
    outcome = kill_during(root, target, stage, random.Random(seed))
    if target == "worker":  # the pool replaces the dead worker and retries its groups: no rerun needed
        assert outcome.first_exit == 0, f"run with a killed worker failed (stage {outcome.stage_seen}): {outcome.stderr}"
    rerun = run_to_end(command(root))
    assert rerun.returncode == 0, f"rerun after killing the {target} in {stage} failed: {rerun.stderr}"
    assert "validation: OK" in rerun.stdout

    config = config_of(root)
    same_rows(read_lake(config), expected_rows(config), key="order_id")
    assert committed_files(root) == clean, "the committed files differ from a clean run's"
    lake = [i.uri for i in storage.list_files(config.location.s3dir_datalake)]
    on_disk = sorted(u[len(config.location.s3dir_datalake) :] for u in lake if u.endswith(".parquet"))
    assert on_disk == [f["path"] for f in clean], "the lake holds files no commit lists"
    debris = list(Path(root, "datalake").rglob("*.dbsnaplake-tmp")) if not root.startswith("s3://") else []
    assert not debris, debris


@pytest.fixture(scope="module")
def clean_joined_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    root = str(tmp_path_factory.mktemp("clean-joined"))
    make_orders_snapshot(root, n_files=8, rows_per_file=600)
    finished = run_to_end([*command(root, JOINING), "--output", "json"])
    assert finished.returncode == 0, finished.stderr
    compacted = json.loads(finished.stdout)["tables"][0]
    assert compacted["compacted"]["joined"] > 0, "compaction joined no staging files: the trials would not test it"
    return committed_files(root)


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "target"), [(s, t) for s in range(3) for t in ("worker", "orchestrator")])
def test_a_run_killed_while_compaction_joins_staging_files_resumes_to_the_clean_result(
    tmp_path: Path, clean_joined_run: list[dict[str, object]], seed: int, target: str
) -> None:
    """Joining is quick: the kill lands within the first 50 ms of compaction (or just after it)."""
    root = str(tmp_path)
    make_orders_snapshot(root, n_files=8, rows_per_file=600)
    outcome = kill_during(root, target, "compact", random.Random(seed), JOINING, within=0.05)
    assert outcome.killed and outcome.stage_seen == "compact", outcome
    rerun = run_to_end(command(root, JOINING))
    assert rerun.returncode == 0, f"{outcome}: {rerun.stderr}"
    assert "validation: OK" in rerun.stdout
    config = config_of(root)
    same_rows(read_lake(config), expected_rows(config), key="order_id")
    assert committed_files(root) == clean_joined_run, "the committed files differ from a clean run's"
    debris = list(Path(root, "datalake").rglob("*.dbsnaplake-tmp"))
    assert not debris, debris


@pytest.mark.parametrize(("seed", "target", "stage"), QUICK_TRIALS)
def test_a_killed_run_resumes_to_the_clean_result(
    tmp_path: Path, clean_run: list[dict[str, object]], seed: int, target: str, stage: str
) -> None:
    crash_trial(str(tmp_path), seed, target, stage, clean_run)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SLOW_SEEDS))
def test_crash_matrix(tmp_path: Path, clean_run: list[dict[str, object]], seed: int) -> None:
    target, stage = TRIALS[seed % len(TRIALS)]
    crash_trial(str(tmp_path), 1_000 + seed, target, stage, clean_run)


@pytest.mark.slow
@pytest.mark.parametrize(("target", "stage"), [("orchestrator", "etl"), ("worker", "compact")])
def test_crash_on_s3(s3_server: str, clean_run: list[dict[str, object]], target: str, stage: str) -> None:
    """On S3 the orchestrator's lease outlives it: the rerun sees its process is gone and takes over at once."""
    root = f"s3://{S3_BUCKET}/crash-{target}-{stage}-{time.time_ns()}"
    clean_paths = [f["path"] for f in clean_run]
    make_orders_snapshot(root, n_files=8, rows_per_file=600)
    outcome = kill_during(root, target, stage, random.Random(7))
    rerun = run_to_end(command(root))
    assert rerun.returncode == 0, f"{outcome}: {rerun.stderr}"
    config = config_of(root)
    same_rows(read_lake(config), expected_rows(config), key="order_id")
    assert [f["path"] for f in committed_files(root)] == clean_paths
