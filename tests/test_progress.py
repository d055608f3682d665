"""Progress that informs: per-file ticks with bytes and rows, resumed work shown as done, plain lines in a pipe,
-v / -q / --log-file."""

from __future__ import annotations

import re
from concurrent.futures import Executor
from pathlib import Path

from dbsnaplake.api import run_pipeline

from .support.cli import dbsnaplake, stage_options
from .support.snapshots import make_orders_snapshot, orders_config


class Recorder:
    """A Progress that remembers what it was told."""

    def __init__(self) -> None:
        self.tasks: list[dict[str, int | str]] = []

    def start(self, task: str, total: int, done: int = 0, total_bytes: int = 0, done_bytes: int = 0) -> None:
        self.tasks.append({"task": task, "total": total, "done": done, "total_bytes": total_bytes,
                           "size": done_bytes, "files": 0, "rows": 0, "steps": 0})  # fmt: skip

    def advance(self, steps: int = 1) -> None:
        self.tasks[-1]["steps"] = int(self.tasks[-1]["steps"]) + steps

    def flow(self, files: int = 0, size: int = 0, rows: int = 0) -> None:
        task = self.tasks[-1]
        task["files"], task["size"], task["rows"] = int(task["files"]) + files, int(task["size"]) + size, int(task["rows"]) + rows

    def note(self, message: str) -> None:
        pass

    def task(self, name: str) -> dict[str, int | str]:
        return next(t for t in self.tasks if t["task"] == name)


def test_workers_report_every_file_with_its_bytes_and_rows(local_root: str, executor: Executor) -> None:
    manifest = make_orders_snapshot(local_root, n_files=6, rows_per_file=500)
    config = orders_config(local_root, manifest, group_size=100_000)
    progress = Recorder()

    result = run_pipeline(config, executor, progress)

    etl = progress.task("ETL to staging")
    assert etl["total"] == len(result.plan.group_manifests) == etl["steps"]
    assert (etl["files"], etl["size"], etl["rows"]) == (6, result.plan.stats.size, 3_000)
    assert etl["total_bytes"] == result.plan.stats.size
    compact = progress.task("compact")
    assert compact["rows"] == 3_000 and compact["size"] == result.compaction_plan.staging_size


def test_a_resumed_run_shows_earlier_work_as_done(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=300)
    config = orders_config(local_root, manifest, group_size=60_000)
    run_pipeline(config)
    progress = Recorder()

    run_pipeline(config, progress=progress)

    etl = progress.task("ETL to staging")
    assert etl["done"] == etl["total"] > 0 and etl["size"] == etl["total_bytes"]


def test_in_a_pipe_progress_is_plain_lines(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=3, rows_per_file=400)
    result = dbsnaplake("run", *stage_options(local_root, manifest))  # stderr is a pipe here
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stderr, "no colour or cursor codes in a log"
    assert re.search(r"^ETL to staging: \d+/\d+, .* 1,200 rows", result.stderr, re.M), result.stderr
    published = [line for line in result.stderr.splitlines() if "committed in" in line]
    assert len(published) == 1 and published[0].rstrip().endswith("db/orders/"), "a long line is never wrapped"


def test_quiet_verbose_and_log_file(local_root: str, tmp_path: Path) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=300)
    options = stage_options(storage_root := str(tmp_path / "q"), manifest)
    quiet = dbsnaplake("-q", "run", *options)
    assert quiet.returncode == 0 and quiet.stderr == "" and "validation: OK" in quiet.stdout

    log_file = tmp_path / "run.log"
    verbose = dbsnaplake("-v", "--log-file", str(log_file), "run", *stage_options(storage_root + "2", manifest))
    assert verbose.returncode == 0, verbose.stderr
    assert "DEBUG dbsnaplake.run.groups" in verbose.stderr
    assert "DEBUG dbsnaplake.run.pipeline: run of" in log_file.read_text()
