"""Benchmark: how the group stages scale with workers, how planning scales with files, and what one task costs.

Three measurements on this machine (figures are printed, never asserted):

a) Scaling of the ETL and compaction stages on 1 and 2 workers (``make_executor("process", n)``) on a generated
   orders snapshot (``bench_pipeline.ensure_dataset``, cached under ``bench/out/data/``; partitioned by year and
   month, sorted by ``order_time``). For each worker count: start the pool (its start-up is reported on its own:
   time until every worker has run a task with dbsnaplake imported), plan once, then time the ETL stage
   (``run_groups`` over the plan's group manifests) and the compaction stage separately, then validate. Each task
   is wrapped to time itself inside the worker, giving the orchestration overhead = stage wall time - (sum of
   task times / workers): submitting, pickling, result return, and workers idling at the end of a stage (load
   imbalance). The group size is pinned to what the planner chooses for the largest worker count, so every run
   processes the same groups.
b) Planning time for synthetic manifests of 250,000, 500,000 and 1,000,000 files (files need not exist;
   ``inspect_files="none"``), best of ``--repeat`` runs, to show planning is linear in the number of files.
c) Per-task overhead of the Dask executor (``dask-local``) against the local process pool, both with 2 workers:
   ``--tasks`` trivial tasks (return the argument), after a warm-up round of the same; microseconds per task
   with all submitted at once, milliseconds per task submitted one at a time, and the executor's start-up and
   shutdown times.

    python bench/bench_scale.py                                   # about 2 minutes on 2 cores
    python bench/bench_scale.py --size 1GB --files 500 --workers 1,2
    python bench/bench_scale.py --skip-scaling --skip-dask --planning-files 1000000

The snapshot is generated on first use (a 256 MiB one takes about a minute) and reused by bench_pipeline.py.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/ is not a package: import bench_pipeline.py from its folder

from bench_pipeline import SORT_COLUMN, YEAR_MONTH, Dataset, ensure_dataset, log, mib, print_table  # noqa: E402

from dbsnaplake import storage  # noqa: E402
from dbsnaplake.api import (  # noqa: E402
    CompactResult,
    EtlResult,
    NoProgress,
    PipelineConfig,
    S3Location,
    SortKey,
    compact,
    etl,
    make_executor,
    parse_size,
    plan,
    plan_compaction,
    read_manifest,
    validate,
)
from dbsnaplake.manifest import files_table, write_manifest  # noqa: E402
from dbsnaplake.progress import Report  # noqa: E402
from dbsnaplake.run.groups import run_groups  # noqa: E402

DEFAULT_OUT = HERE / "out"
WARM_UP_SECONDS = 0.3
SEQUENTIAL_TASKS = 50
MiB = 1024**2
SYNTHETIC_ROWS_PER_FILE = 100_000
PLANNING_WORKERS = 2
PLANNING_WORKER_MEMORY = 4 * 1024 * MiB


# ---- worker functions (top level, so the process pool can pickle them by reference) ------------------------


def timed_etl(group_manifest: str, config: PipelineConfig, report: Report | None = None) -> tuple[EtlResult, float]:
    """``etl``, timed inside the worker."""
    start = time.perf_counter()
    result = etl(group_manifest, config, report)
    return result, time.perf_counter() - start


def timed_compact(
    group_manifest: str, config: PipelineConfig, report: Report | None = None
) -> tuple[CompactResult, float]:
    """``compact``, timed inside the worker."""
    start = time.perf_counter()
    result = compact(group_manifest, config, report)
    return result, time.perf_counter() - start


def warm_up(linger: float) -> tuple[int, float]:
    """Import the stage modules, note when this worker was ready, and linger so that every worker gets one."""
    import dbsnaplake.stages.compact
    import dbsnaplake.stages.etl  # noqa: F401

    ready = time.time()
    time.sleep(linger)
    return os.getpid(), ready


def echo(value: int) -> int:
    """The trivial task: its cost is the executor's."""
    return value


def start_executor(kind: str, workers: int) -> tuple[Executor, float]:
    """Start an executor and run one warm-up task per worker; return it with its start-up seconds (until the
    last worker was ready to run a task, with dbsnaplake imported)."""
    t0 = time.time()
    executor = make_executor(kind, workers)
    ready = [f.result() for f in [executor.submit(warm_up, WARM_UP_SECONDS) for _ in range(workers)]]
    if len({pid for pid, _ in ready}) < workers:
        log(f"  note: the {workers} warm-up tasks ran on {len({pid for pid, _ in ready})} processes only")
    return executor, max(at for _, at in ready) - t0


# ---- a) scaling of the group stages ------------------------------------------------------------------------


@dataclass(frozen=True)
class StageTiming:
    wall: float
    task_seconds: tuple[float, ...]
    workers: int

    @property
    def busy(self) -> float:
        return sum(self.task_seconds)

    @property
    def overhead(self) -> float:
        """Wall time not explained by the tasks' own time spread over the workers."""
        return self.wall - self.busy / self.workers


@dataclass(frozen=True)
class ScalingRun:
    workers: int
    pool_start: float
    plan: float
    etl_groups: int
    etl: StageTiming
    plan_compaction: float
    compact_groups: int
    compact: StageTiming
    validation_ok: bool


def scaling_config(
    root: Path, dataset: Dataset, workers: int, group_size: int | None, keys: tuple[str, ...]
) -> PipelineConfig:
    return PipelineConfig(
        location=S3Location(s3uri_staging=str(root / "staging"), s3uri_datalake=str(root / "datalake")),
        snapshot_manifest=dataset.manifest,
        partition_by=keys,
        sort_by=(SortKey(SORT_COLUMN),),
        transform=YEAR_MONTH,
        workers=workers,
        group_size=group_size,
    )


def run_stage(
    executor: Executor,
    worker: Callable[..., tuple[object, float]],
    config: PipelineConfig,
    uris: Sequence[str],
    workers: int,
    stage: str,
) -> StageTiming:
    start = time.perf_counter()
    pairs = run_groups(executor, worker, config, uris, NoProgress(), worker.__name__, stage)
    return StageTiming(time.perf_counter() - start, tuple(seconds for _, seconds in pairs), workers)


def run_scaling(root: Path, dataset: Dataset, workers: int, group_size: int, keys: tuple[str, ...]) -> ScalingRun:
    """Plan, ETL, plan compaction, compact and validate on a warm pool of ``workers`` processes."""
    storage.delete_folder(str(root))
    config = scaling_config(root, dataset, workers, group_size, keys)
    log(f"scaling: {workers} worker(s), starting the pool")
    executor, pool_start = start_executor("process", workers)
    try:
        start = time.perf_counter()
        planned = plan(config)
        plan_seconds = time.perf_counter() - start
        log(f"  ETL of {len(planned.group_manifests)} groups")
        etl_timing = run_stage(executor, timed_etl, config, planned.group_manifests, workers, "etl")
        start = time.perf_counter()
        compaction_plan = plan_compaction(config)
        plan_compaction_seconds = time.perf_counter() - start
        log(f"  compaction of {len(compaction_plan.group_manifests)} groups")
        compact_timing = run_stage(executor, timed_compact, config, compaction_plan.group_manifests, workers, "compact")
    finally:
        executor.shutdown(wait=True)
    return ScalingRun(
        workers=workers,
        pool_start=pool_start,
        plan=plan_seconds,
        etl_groups=len(planned.group_manifests),
        etl=etl_timing,
        plan_compaction=plan_compaction_seconds,
        compact_groups=len(compaction_plan.group_manifests),
        compact=compact_timing,
        validation_ok=validate(config).ok,
    )


def pinned_group_size(root: Path, dataset: Dataset, workers: int, keys: tuple[str, ...]) -> tuple[int, str]:
    """The group size the planner chooses for ``workers`` workers (one throwaway plan)."""
    storage.delete_folder(str(root))
    planned = plan(scaling_config(root, dataset, workers, None, keys))
    storage.delete_folder(str(root))
    return planned.group_size.size, planned.group_size.reason


def print_scaling(dataset: Dataset, runs: Sequence[ScalingRun], reason: str) -> None:
    print(
        f"\na) group stages on a local process pool: {dataset.n_files} files, {mib(dataset.size)} MiB, "
        f"{dataset.n_rows:,} rows; pinned {reason}"
    )
    headers = ["workers", "pool start", "plan", "ETL groups", "ETL", "ETL tasks", "ETL overhead"]
    headers += ["plan-compact", "compact groups", "compact", "compact tasks", "compact overhead", "valid"]
    rows = [
        [
            str(r.workers),
            f"{r.pool_start:.2f}",
            f"{r.plan:.2f}",
            str(r.etl_groups),
            f"{r.etl.wall:.2f}",
            f"{r.etl.busy:.2f}",
            f"{r.etl.overhead:.2f}",
            f"{r.plan_compaction:.2f}",
            str(r.compact_groups),
            f"{r.compact.wall:.2f}",
            f"{r.compact.busy:.2f}",
            f"{r.compact.overhead:.2f}",
            "OK" if r.validation_ok else "FAILED",
        ]
        for r in runs
    ]
    print_table(headers, rows)
    print(
        "(seconds. 'ETL'/'compact' = stage wall time on a started pool; 'tasks' = sum of the tasks' own times "
        "measured inside the workers; 'overhead' = wall - tasks / workers.)"
    )
    base = runs[0]
    for r in runs[1:]:
        etl, compact = base.etl.wall / r.etl.wall, base.compact.wall / r.compact.wall
        both = (base.etl.wall + base.compact.wall) / (r.etl.wall + r.compact.wall)
        print(
            f"speedup {base.workers} -> {r.workers} workers: ETL {etl:.2f}x, compaction {compact:.2f}x, "
            f"both {both:.2f}x (ideal {r.workers / base.workers:.1f}x; task time {base.etl.busy:.1f} -> "
            f"{r.etl.busy:.1f} s ETL, {base.compact.busy:.1f} -> {r.compact.busy:.1f} s compaction)"
        )
    print(
        f"({os.cpu_count()} cores: each worker gets cores / workers Arrow and Polars threads, so 1 worker uses "
        "the cores through threads and 2 workers through processes.)"
    )


# ---- b) planning time against the number of files ----------------------------------------------------------


@dataclass(frozen=True)
class FileSizes:
    """Synthetic file sizes, uniform in [low, high] bytes."""

    name: str
    low: int
    high: int


SMALL_FILES = FileSizes("0.5-1.5 MiB", MiB // 2, 3 * MiB // 2)
LARGE_FILES = FileSizes("8-64 MiB", 8 * MiB, 64 * MiB)


@dataclass(frozen=True)
class PlanningRun:
    n_files: int
    sizes: FileSizes
    read_manifest: float
    plan: float
    groups: int
    group_size: int


def write_synthetic_manifest(folder: Path, n_files: int, sizes: FileSizes) -> str:
    """A manifest of ``n_files`` Parquet files that do not exist (sizes and record counts are made up)."""
    rng = np.random.default_rng(n_files)
    uris = [str(folder / "snapshot" / f"part-{i:07d}.snappy.parquet") for i in range(n_files)]
    file_sizes = rng.integers(sizes.low, sizes.high + 1, n_files).tolist()
    summary = str(folder / "manifest" / "manifest-summary.json")
    write_manifest(summary, files_table(uris, file_sizes, [SYNTHETIC_ROWS_PER_FILE] * n_files))
    return summary


def run_planning(root: Path, n_files: int, sizes: FileSizes, repeat: int) -> PlanningRun:
    """Best of ``repeat``: read the manifest alone, and plan (which reads it again) with ``inspect_files="none"``.
    The worker memory is pinned, so the group size (and the number of group manifests written) does not depend
    on this machine's memory."""
    folder = root / f"files-{n_files}"
    storage.delete_folder(str(folder))
    log(f"planning: writing a manifest of {n_files:,} files of {sizes.name}")
    manifest = write_synthetic_manifest(folder, n_files, sizes)
    config = PipelineConfig(
        location=S3Location(s3uri_staging=str(folder / "staging"), s3uri_datalake=str(folder / "datalake")),
        snapshot_manifest=manifest,
        inspect_files="none",
        workers=PLANNING_WORKERS,
        worker_memory=PLANNING_WORKER_MEMORY,
    )
    reads, plans = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        read_manifest(manifest)
        reads.append(time.perf_counter() - start)
        start = time.perf_counter()
        planned = plan(config)
        plans.append(time.perf_counter() - start)
    log(f"  planned in {min(plans):.2f}s (best of {repeat}), {len(planned.group_manifests)} groups")
    storage.delete_folder(str(folder))
    return PlanningRun(n_files, sizes, min(reads), min(plans), len(plan.group_manifests), plan.group_size.size)


def print_planning(runs: Sequence[PlanningRun]) -> None:
    print(
        f"\nb) planning time, inspect_files='none' (files need not exist), {PLANNING_WORKERS} workers of "
        f"{PLANNING_WORKER_MEMORY // 1024**3} GiB, best of the repeats, group manifests on local disk"
    )
    headers = ["files", "file sizes", "read manifest s", "plan s", "µs per file", "groups", "group size"]
    rows = [
        [
            f"{r.n_files:,}",
            r.sizes.name,
            f"{r.read_manifest:.2f}",
            f"{r.plan:.2f}",
            f"{r.plan / r.n_files * 1e6:.2f}",
            str(r.groups),
            f"{mib(r.group_size)} MiB",
        ]
        for r in runs
    ]
    print_table(headers, rows)
    small = [r for r in runs if r.sizes == SMALL_FILES]
    if len(small) > 1:
        first, last = small[0], small[-1]
        print(
            f"{last.n_files / first.n_files:.0f}x the files took {last.plan / first.plan:.2f}x the time "
            f"(linear: {last.n_files / first.n_files:.2f}x)"
        )
    for r in small:
        if r.n_files == 1_000_000:
            print(f"1,000,000 files planned in {r.plan:.1f} s (aim < 10 s)")
    for large in [r for r in runs if r.sizes == LARGE_FILES]:
        same = next((r for r in small if r.n_files == large.n_files and r.groups < large.groups), None)
        if same:
            per_group = (large.plan - same.plan) / (large.groups - same.groups)
            print(
                f"{large.n_files:,} files of {large.sizes.name} need {large.groups} groups instead of {same.groups}: "
                f"+{large.plan - same.plan:.2f} s, about {per_group * 1e3:.1f} ms per group manifest written"
            )


# ---- c) per-task overhead of the executors -----------------------------------------------------------------


@dataclass(frozen=True)
class TaskOverhead:
    kind: str
    start_up: float
    per_task_batch: float
    per_task_sequential: float
    shutdown: float


def measure_tasks(kind: str, workers: int, n_tasks: int) -> TaskOverhead:
    """Warm up, then ``n_tasks`` trivial tasks submitted at once, then ``SEQUENTIAL_TASKS`` one at a time."""
    log(f"tasks: {kind} with {workers} workers")
    executor, start_up = start_executor(kind, workers)
    try:
        for future in [executor.submit(echo, i) for i in range(n_tasks)]:
            future.result()
        start = time.perf_counter()
        results = [f.result() for f in [executor.submit(echo, i) for i in range(n_tasks)]]
        batch = (time.perf_counter() - start) / n_tasks
        assert results == list(range(n_tasks))
        start = time.perf_counter()
        for i in range(SEQUENTIAL_TASKS):
            executor.submit(echo, i).result()
        sequential = (time.perf_counter() - start) / SEQUENTIAL_TASKS
    finally:
        start = time.perf_counter()
        executor.shutdown(wait=True)
        shutdown = time.perf_counter() - start
    return TaskOverhead(kind, start_up, batch, sequential, shutdown)


def print_tasks(runs: Sequence[TaskOverhead], n_tasks: int, workers: int) -> None:
    print(f"\nc) executor overhead with {workers} workers: trivial tasks (return the argument), after a warm-up")
    headers = ["executor", "start-up s", f"µs/task ({n_tasks} at once)", f"ms/task ({SEQUENTIAL_TASKS} one by one)"]
    headers.append("shutdown s")
    rows = [
        [
            r.kind,
            f"{r.start_up:.2f}",
            f"{r.per_task_batch * 1e6:,.0f}",
            f"{r.per_task_sequential * 1e3:.2f}",
            f"{r.shutdown:.2f}",
        ]
        for r in runs
    ]
    print_table(headers, rows)
    print("(start-up: from creating the executor until every worker has run a task with dbsnaplake imported.)")
    if len(runs) == 2:
        process, dask = runs
        print(
            f"{dask.kind} / {process.kind}: {dask.per_task_batch / process.per_task_batch:.1f}x per task at once, "
            f"{dask.per_task_sequential / process.per_task_sequential:.1f}x one by one, "
            f"{dask.start_up / process.start_up:.1f}x start-up"
        )


# ---- main --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="256MB", help="snapshot size for the scaling runs (default 256MB)")
    p.add_argument("--files", type=int, default=125, help="snapshot files for the scaling runs (default 125)")
    p.add_argument("--workers", default="1,2", help="worker counts of the scaling runs (default 1,2)")
    p.add_argument("--partition-by", default="year,month", help="partition keys among year,month (default both)")
    p.add_argument(
        "--planning-files",
        default="250000,500000,1000000",
        help="manifest sizes to plan, files of 0.5-1.5 MiB (default 250000,500000,1000000)",
    )
    p.add_argument(
        "--planning-large",
        type=int,
        default=250_000,
        help="also plan this many files of 8-64 MiB, to measure the cost per group (default 250000; 0: skip)",
    )
    p.add_argument("--repeat", type=int, default=2, help="planning runs per manifest size; the best counts")
    p.add_argument("--tasks", type=int, default=200, help="trivial tasks per executor (default 200)")
    p.add_argument("--task-workers", type=int, default=2, help="workers of each executor in c) (default 2)")
    p.add_argument("--skip-scaling", action="store_true", help="skip a) the scaling runs")
    p.add_argument("--skip-planning", action="store_true", help="skip b) the planning runs")
    p.add_argument("--skip-dask", action="store_true", help="skip c) the executor comparison (needs dask)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="cache and scratch folder (default bench/out)")
    return p.parse_args(argv)


def machine() -> str:
    import polars as pl
    import pyarrow as pa

    return (
        f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 1024**3:.0f} GiB, "
        f"Python {platform.python_version()}, pyarrow {pa.__version__}, polars {pl.__version__}"
    )


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    runs_root = out / "runs"
    started = time.perf_counter()
    scaling: list[ScalingRun] = []
    planning: list[PlanningRun] = []
    tasks: list[TaskOverhead] = []
    reason = ""
    dataset = None

    if not args.skip_scaling:
        dataset = ensure_dataset(out, parse_size(args.size), args.files)
        counts = sorted(int(n) for n in args.workers.split(","))
        keys = tuple(k for k in args.partition_by.split(",") if k)
        group_size, reason = pinned_group_size(runs_root / "scale-probe", dataset, counts[-1], keys)
        scaling = [run_scaling(runs_root / f"scale-{n}w", dataset, n, group_size, keys) for n in counts]
    if not args.skip_planning:
        sizes = [int(n) for n in args.planning_files.split(",")]
        planning = [run_planning(runs_root / "planning", n, SMALL_FILES, args.repeat) for n in sorted(sizes)]
        if args.planning_large:
            planning.append(run_planning(runs_root / "planning", args.planning_large, LARGE_FILES, args.repeat))
    if not args.skip_dask:
        tasks = [measure_tasks(kind, args.task_workers, args.tasks) for kind in ("process", "dask-local")]

    print("\n" + "=" * 100)
    print(machine())
    if dataset is not None:
        print_scaling(dataset, scaling, reason)
    if planning:
        print_planning(planning)
    if tasks:
        print_tasks(tasks, args.tasks, args.task_workers)
    print(f"\nbenchmark wall time: {time.perf_counter() - started:.0f} s")
    return 0 if all(r.validation_ok for r in scaling) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
