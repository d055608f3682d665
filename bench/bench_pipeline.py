"""Benchmark: dbsnaplake's pipeline against the same job done directly with Polars and with DuckDB.

What it measures, on one generated orders snapshot (``dbsnaplake.demo.orders_table``; 2021-01..2023-12, later
months busier, so partitions differ in size):

* dbsnaplake ``run_pipeline`` (process pool, transform = year/month SQL, ``--partition-by``, sorted by
  ``order_time``, 128 MiB target files): wall seconds, MiB/s (snapshot bytes / seconds), seconds per stage,
  the group size the planner chose and why, the PEAK RSS OF EVERY WORKER PROCESS (overall and per stage: ETL,
  compaction) and of the orchestrator (this process), and the output files: count, min / median / max size and
  the share within ±10 % of the target (each partition's smallest file excepted).
* Polars (``scan_parquet`` → year/month → ``sort`` → ``sink_parquet(pl.PartitionBy(...))``) and DuckDB
  (``COPY (SELECT ...) TO dir (FORMAT PARQUET, PARTITION_BY (...))``), each in its own subprocess so its peak
  RSS is exact (``ru_maxrss`` from ``wait4``): seconds, MiB/s, peak RSS, output files, and our time ratio.
  DuckDB runs twice: with ``ORDER BY`` in the query (the textbook form) and with the ``ORDER_BY`` COPY option.
* Every output is checked: total rows equal the snapshot's, and every file is sorted by ``order_time``.

How peak RSS is measured: a background thread samples, every 50 ms, the RSS of this process and of every
descendant process (psutil), and also reads each process's kernel high-water mark (``VmHWM`` in
``/proc/<pid>/status``), which catches peaks between samples. The high-water marks are reset
(``/proc/<pid>/clear_refs``) when the pipeline enters a new stage, giving per-stage peaks. RSS includes
memory-mapped snapshot pages that are resident.

Options: ``--scale-check`` also runs ours at a quarter of ``--size`` with the same group size (peak memory
per worker should stay flat: it depends on the group size, not on the snapshot size);
``--s3`` also runs ours against a local moto S3 server (started and stopped here).

    python bench/bench_pipeline.py --size 1GB --files 500
    python bench/bench_pipeline.py --size 1GB --scale-check --no-baselines
    python bench/bench_pipeline.py --size 300MB --files 150 --s3 --no-baselines

Generated snapshots are cached under ``bench/out/data/`` (gitignored), keyed by size and file count.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.api import (
    PipelineConfig,
    RunResult,
    S3Location,
    SortKey,
    build_manifest,
    make_executor,
    parse_size,
    read_manifest,
    run_pipeline,
)
from dbsnaplake.demo import orders_table
from dbsnaplake.manifest import PARQUET_SCHEMA

# The moto S3 server launcher is test support, not part of the package: import it from the repository's tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.s3_server import local_s3_server

MiB = 1024**2
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"
SORT_COLUMN = "order_time"
YEAR_MONTH = (  # the transform of tests/support/snapshots.py
    "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year, "
    "LPAD(CAST(EXTRACT(MONTH FROM order_time) AS VARCHAR), 2, '0') AS month FROM snapshot"
)
DUCKDB_COLUMNS = (
    "*, CAST(year(order_time) AS VARCHAR) AS year, lpad(CAST(month(order_time) AS VARCHAR), 2, '0') AS month"
)
SAMPLE_SECONDS = 0.05
S3_BUCKET = "dbsnaplake-bench"
WORKER_OVERHEAD = 300 * MiB  # the "2 x group size + 300 MB" rule of thumb


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / MiB:,.1f}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- the snapshot ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    folder: str
    """Where the snapshot's Parquet files are (a local folder, or an s3:// prefix)."""
    manifest: str
    n_files: int
    size: int
    n_rows: int

    def uris(self) -> list[str]:
        return [str(u) for u in read_manifest(self.manifest).column("uri")]


def bytes_per_row(rng: np.random.Generator, total_rows_guess: int) -> float:
    """Snappy Parquet bytes per orders row, measured on a sample."""
    sample = orders_table(0, 100_000, rng, total_rows_guess)
    sink = pa.BufferOutputStream()
    pq.write_table(sample, sink, compression="snappy")
    return sink.getvalue().size / sample.num_rows


def generate_snapshot(folder: Path, size: int, n_files: int, seed: int = 42) -> None:
    """Write ``n_files`` Parquet files of orders, together about ``size`` bytes."""
    rng = np.random.default_rng(seed)
    n_rows = int(size / bytes_per_row(rng, 30_000_000))
    n_rows = int(size / bytes_per_row(rng, n_rows))  # refine: the time span depends on the total
    rows_per_file = math.ceil(n_rows / n_files)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(n_files):
        first = index * rows_per_file
        count = max(0, min(rows_per_file, n_rows - first))
        table = orders_table(first, count, rng, n_rows)
        pq.write_table(table, folder / f"part-{index:05d}.snappy.parquet", compression="snappy")
        if (index + 1) % 50 == 0:
            log(f"  generated {index + 1}/{n_files} files")


def ensure_dataset(out: Path, size: int, n_files: int) -> Dataset:
    """The cached snapshot for (size, files), generated on first use. The manifest is written last."""
    root = out / "data" / f"orders-{size // MiB}MiB-{n_files}files"
    snapshot, manifest = root / "snapshot", root / "manifest" / "manifest-summary.json"
    if not manifest.exists():
        log(f"generating a {mib(size)} MiB snapshot in {n_files} files under {root}")
        shutil.rmtree(root, ignore_errors=True)
        generate_snapshot(snapshot, size, n_files)
        build_manifest(str(snapshot), str(manifest))
    elif PARQUET_SCHEMA not in read_manifest(str(manifest)).files.column_names:  # built by an older dbsnaplake
        log(f"building the manifest of {root} again, as this dbsnaplake builds it (with each footer's schema)")
        build_manifest(str(snapshot), str(manifest))
    m = read_manifest(str(manifest))
    return Dataset(str(snapshot), str(manifest), m.n_file, m.size, int(m.n_record or 0))


# ---- peak RSS ----------------------------------------------------------------------------------------------


def read_hwm(pid: int) -> int:
    """The kernel's peak-RSS mark of a process (``VmHWM``), in bytes; 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_hwm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def role_of(process: psutil.Process) -> str:
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return "other"
    if "resource_tracker" in command:
        return "resource_tracker"
    if "multiprocessing" in command:
        return "worker"
    return "other"


@dataclass
class ProcessPeak:
    pid: int
    role: str
    sampled: int = 0
    """Largest RSS seen by the 50 ms sampler."""
    hwm: dict[str, int] = field(default_factory=dict)
    """Kernel peak RSS per phase."""

    @property
    def peak(self) -> int:
        return max([self.sampled, *self.hwm.values()])


class RssSampler:
    """Samples this process and its descendants every 50 ms in a thread; keeps peaks per process and phase."""

    def __init__(self, exclude: Sequence[int] = ()) -> None:
        self._exclude = set(exclude)
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self.phase = "start"
        self.main = ProcessPeak(os.getpid(), "orchestrator")
        self.children: dict[int, ProcessPeak] = {}
        self.hwm_resettable = True
        self.samples = 0

    def __enter__(self) -> RssSampler:
        self.hwm_resettable = reset_hwm(self.main.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def _record(self, peak: ProcessPeak, rss: int) -> None:
        peak.sampled = max(peak.sampled, rss)
        hwm = read_hwm(peak.pid)
        peak.hwm[self.phase] = max(peak.hwm.get(self.phase, 0), hwm, rss)

    def sample(self) -> None:
        with self._lock:
            self.samples += 1
            with contextlib.suppress(psutil.Error):
                self._record(self.main, self._me.memory_info().rss)
            for child in self._children():
                try:
                    peak = self.children.get(child.pid) or ProcessPeak(child.pid, role_of(child))
                    self.children[child.pid] = peak
                    self._record(peak, child.memory_info().rss)
                except psutil.Error:
                    continue

    def _children(self) -> list[psutil.Process]:
        try:
            found = self._me.children(recursive=True)
        except psutil.Error:
            return []
        return [c for c in found if c.pid not in self._exclude]

    def enter_phase(self, phase: str) -> None:
        """Close the current phase (one last sample) and reset every high-water mark for the next one."""
        if phase == self.phase:
            return
        self.sample()
        with self._lock:
            self.phase = phase
            for pid in [self.main.pid, *self.children]:
                reset_hwm(pid)

    @property
    def workers(self) -> list[ProcessPeak]:
        return [p for p in self.children.values() if p.role == "worker"]


STAGE_PHASES = {"ETL to staging": "etl", "compact": "compact"}


class PhaseProgress:
    """A dbsnaplake ``Progress`` that tells the sampler which stage runs, and logs stage starts."""

    def __init__(self, sampler: RssSampler) -> None:
        self._sampler = sampler

    def start(self, task: str, total: int, done: int = 0, total_bytes: int = 0, done_bytes: int = 0) -> None:
        log(f"  {task} ({total})")
        self._sampler.enter_phase(STAGE_PHASES.get(task, "other"))

    def advance(self, steps: int = 1) -> None:
        pass

    def flow(self, files: int = 0, size: int = 0, rows: int = 0) -> None:
        pass

    def note(self, message: str) -> None:
        log(f"  {message}")


# ---- output checks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputFiles:
    count: int
    total: int
    min: int
    median: int
    max: int
    rows: int
    sorted: bool
    partitions: dict[str, int]
    """Bytes per partition folder."""

    def __str__(self) -> str:
        return f"{self.count} files, {mib(self.min)} / {mib(self.median)} / {mib(self.max)} MiB"


def partition_of(uri: str, root: str) -> str:
    relative = uri[len(storage.as_dir(root)) :]
    return relative.rsplit("/", 1)[0] if "/" in relative else ""


def is_sorted_file(uri: str, size: int) -> bool:
    with storage.open_input_file(uri, size) as f:
        column = pq.ParquetFile(f).read(columns=[SORT_COLUMN]).column(0)
    values = column.cast(pa.int64()).to_numpy()
    return bool(np.all(values[1:] >= values[:-1]))


def inspect_output(root: str) -> OutputFiles:
    """Sizes, row counts (footers) and sortedness of every Parquet file below ``root``."""
    files = [i for i in storage.list_files(root) if i.uri.endswith(".parquet")]
    sizes = [i.size for i in files]
    rows, ordered = 0, True
    partitions: dict[str, int] = {}
    for info in files:
        with storage.open_input_file(info.uri, info.size) as f:
            rows += pq.ParquetFile(f).metadata.num_rows
        ordered = ordered and is_sorted_file(info.uri, info.size)
        key = partition_of(info.uri, root)
        partitions[key] = partitions.get(key, 0) + info.size
    return OutputFiles(
        count=len(files),
        total=sum(sizes),
        min=min(sizes, default=0),
        median=int(statistics.median(sizes)) if sizes else 0,
        max=max(sizes, default=0),
        rows=rows,
        sorted=ordered,
        partitions=partitions,
    )


# ---- one measured run --------------------------------------------------------------------------------------


@dataclass
class Figures:
    name: str
    input_bytes: int
    input_files: int
    input_rows: int
    seconds: float
    peak_rss: int
    """Ours: the orchestrator (this process). Baselines: the whole process."""
    output: OutputFiles
    worker_peak: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def mib_per_second(self) -> float:
        return self.input_bytes / MiB / self.seconds

    @property
    def rows_ok(self) -> bool:
        return self.output.rows == self.input_rows


@dataclass(frozen=True)
class OursSettings:
    workers: int
    partition_by: tuple[str, ...]
    target_file_size: int
    group_size: int | None


def ours_config(root: str, dataset: Dataset, settings: OursSettings) -> PipelineConfig:
    return PipelineConfig(
        location=S3Location(
            s3uri_staging=storage.join(root, "staging", "db", "orders", "snapshot=2024-01-01T00:00:00Z"),
            s3uri_datalake=storage.join(root, "datalake", "db", "orders"),
        ),
        snapshot_manifest=dataset.manifest,
        partition_by=settings.partition_by,
        sort_by=(SortKey(SORT_COLUMN),),
        transform=YEAR_MONTH,
        workers=settings.workers,
        target_file_size=settings.target_file_size,
        group_size=settings.group_size,
    )


def run_ours(name: str, dataset: Dataset, root: str, settings: OursSettings, exclude: Sequence[int] = ()) -> Figures:
    """Run the whole pipeline on a fresh process pool while sampling every process's RSS."""
    storage.delete_folder(root)
    config = ours_config(root, dataset, settings)
    log(f"{name}: {mib(dataset.size)} MiB, {dataset.n_files} files, {settings.workers} workers -> {root}")
    with RssSampler(exclude) as sampler:
        start = time.perf_counter()
        executor = make_executor("process", settings.workers)
        try:
            result = run_pipeline(config, executor, PhaseProgress(sampler))
            sampler.enter_phase("end")
        finally:
            executor.shutdown(wait=True)
        seconds = time.perf_counter() - start
    log(f"{name}: done in {seconds:.1f}s; checking the output")
    return Figures(
        name=name,
        input_bytes=dataset.size,
        input_files=dataset.n_files,
        input_rows=dataset.n_rows,
        seconds=seconds,
        peak_rss=sampler.main.peak,
        output=inspect_output(config.location.s3dir_datalake),
        worker_peak=max((w.peak for w in sampler.workers), default=None),
        details=ours_details(result, sampler, settings),
    )


def ours_details(result: RunResult, sampler: RssSampler, settings: OursSettings) -> dict[str, Any]:
    v = result.validation
    return {
        "group_size": result.plan.group_size.size,
        "group_size_reason": result.plan.group_size.reason,
        "n_etl_groups": len(result.plan.group_manifests),
        "n_compaction_groups": len(result.compaction_plan.group_manifests),
        "stage_seconds": dict(result.seconds),
        "files_near_target": v.files_near_target,
        "files_judged": v.files_judged,
        "target": settings.target_file_size,
        "validation_ok": v.ok,
        "partitions": {p.partition: (p.datalake.files, p.datalake.bytes) for p in v.partitions},
        "workers": [
            {"pid": w.pid, "sampled": w.sampled, "hwm": dict(w.hwm), "peak": w.peak}
            for w in sorted(sampler.workers, key=lambda w: w.pid)
        ],
        "main_hwm": dict(sampler.main.hwm),
        "hwm_resettable": sampler.hwm_resettable,
        "samples": sampler.samples,
        "other_children": [(c.pid, c.role, c.peak) for c in sampler.children.values() if c.role != "worker"],
    }


# ---- baselines (each in a subprocess) ----------------------------------------------------------------------


def polars_job(uris: list[str], dest: str, keys: list[str]) -> None:
    import polars as pl

    frame = pl.scan_parquet(uris).with_columns(
        pl.col("order_time").dt.year().cast(pl.String).alias("year"),
        pl.col("order_time").dt.month().cast(pl.String).str.zfill(2).alias("month"),
    )
    frame.sort(SORT_COLUMN).sink_parquet(pl.PartitionBy(dest, key=keys, include_key=False), mkdir=True)


def duckdb_job(uris: list[str], dest: str, keys: list[str], order_option: bool) -> None:
    """``order_option``: sort with the COPY option ``ORDER_BY`` (sorted files) instead of ``ORDER BY`` in the
    query (which DuckDB's multi-threaded partitioned write does not keep inside files)."""
    import duckdb

    files = ", ".join("'" + u.replace("'", "''") + "'" for u in uris)
    query = f"SELECT {DUCKDB_COLUMNS} FROM read_parquet([{files}])"
    options = f"FORMAT PARQUET, PARTITION_BY ({', '.join(keys)}), COMPRESSION ZSTD"
    if order_option:
        options += f", ORDER_BY ({SORT_COLUMN})"
    else:
        query += f" ORDER BY {SORT_COLUMN}"
    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{dest}.duckdb-tmp'")
    con.execute(f"COPY ({query}) TO '{dest}' ({options})")
    con.close()


BASELINES = {
    "polars": "Polars sink_parquet(PartitionBy)",
    "duckdb": "DuckDB COPY, ORDER BY in query",
    "duckdb-order_by": "DuckDB COPY (ORDER_BY option)",
}


def baseline_main(kind: str, manifest: str, dest: str, keys: list[str]) -> None:
    """Entry point of the baseline subprocess: run the job, print its seconds as JSON."""
    uris = [str(u) for u in read_manifest(manifest).column("uri")]
    start = time.perf_counter()
    if kind == "polars":
        polars_job(uris, dest, keys)
    else:
        duckdb_job(uris, dest, keys, order_option=kind == "duckdb-order_by")
    print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def run_baseline(kind: str, dataset: Dataset, dest: Path, keys: Sequence[str]) -> Figures:
    """Run one baseline in a child process; its peak RSS is the child's ``ru_maxrss`` (from ``wait4``)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(f"{dest}.duckdb-tmp", ignore_errors=True)
    command = [sys.executable, __file__, "_baseline", kind, dataset.manifest, str(dest), ",".join(keys)]
    log(f"{kind}: {BASELINES[kind]}")
    wall_start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - wall_start
    if process.returncode != 0:
        raise RuntimeError(f"baseline {kind} failed with exit code {process.returncode}")
    seconds = float(json.loads(out.strip().splitlines()[-1])["seconds"])
    log(f"{kind}: done in {seconds:.1f}s (process wall {wall:.1f}s); checking the output")
    output = inspect_output(str(dest))
    shutil.rmtree(f"{dest}.duckdb-tmp", ignore_errors=True)
    return Figures(
        name=kind,
        input_bytes=dataset.size,
        input_files=dataset.n_files,
        input_rows=dataset.n_rows,
        seconds=seconds,
        peak_rss=usage.ru_maxrss * 1024,  # kilobytes on Linux
        output=output,
        details={"process_wall": wall},
    )


# ---- S3 (moto) ---------------------------------------------------------------------------------------------


def upload_dataset(local: Dataset) -> Dataset:
    """Create the bucket, upload the snapshot files and build the manifest on S3."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    client.create_bucket(Bucket=S3_BUCKET)
    prefix = "snapshot/orders"
    files = sorted(Path(local.folder).glob("*.parquet"))
    log(f"uploading {len(files)} files ({mib(local.size)} MiB) to s3://{S3_BUCKET}/{prefix}/")
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: client.upload_file(str(p), S3_BUCKET, f"{prefix}/{p.name}"), files))
    log(f"uploaded in {time.perf_counter() - start:.1f}s; building the manifest on S3")
    folder = f"s3://{S3_BUCKET}/{prefix}"
    manifest = f"s3://{S3_BUCKET}/manifest/manifest-summary.json"
    m = build_manifest(folder, manifest).manifest
    return Dataset(folder, manifest, m.n_file, m.size, int(m.n_record or 0))


def run_ours_on_s3(local: Dataset, settings: OursSettings) -> Figures:
    with local_s3_server() as server:
        dataset = upload_dataset(local)
        return run_ours(
            "dbsnaplake (moto S3)", dataset, f"s3://{S3_BUCKET}/bench", settings, exclude=[server.process.pid]
        )


# ---- report ------------------------------------------------------------------------------------------------


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))


def near_target_text(f: Figures) -> str:
    if "files_near_target" not in f.details:
        return "-"
    judged = f.details["files_judged"]
    return f"{f.details['files_near_target']:.0%} of {judged}" if judged else "n/a (0 judged)"


def print_main_table(figures: Sequence[Figures], ours: Figures) -> None:
    headers = [
        "run",
        "seconds",
        "MiB/s",
        "ours/x",
        "peak RSS worker",
        "peak RSS proc",
        "files",
        "min/med/max MiB",
        "±10% of target",
        "rows ok",
        "sorted",
    ]
    rows = []
    for f in figures:
        rows.append(
            [
                f.name,
                f"{f.seconds:.1f}",
                f"{f.mib_per_second:.1f}",
                "-" if f is ours or f.worker_peak is not None else f"{ours.seconds / f.seconds:.2f}x",
                mib(f.worker_peak),
                mib(f.peak_rss),
                str(f.output.count),
                f"{mib(f.output.min)}/{mib(f.output.median)}/{mib(f.output.max)}",
                near_target_text(f),
                "yes" if f.rows_ok else f"NO ({f.output.rows:,})",
                "yes" if f.output.sorted else "NO",
            ]
        )
    print_table(headers, rows)
    print(
        "(peak RSS in MiB. 'peak RSS proc' = our orchestrator, or the whole baseline process. 'ours/x' = our "
        "seconds / that run's seconds. Baseline seconds exclude interpreter start-up.)"
    )


def print_ours(f: Figures) -> None:
    d = f.details
    print(f"\n{f.name}: {mib(f.input_bytes)} MiB in, {f.input_rows:,} rows, {f.seconds:.1f}s")
    print(f"  planner     : {d['group_size_reason']}")
    print(f"  groups      : {d['n_etl_groups']} ETL groups, {d['n_compaction_groups']} compaction groups")
    print("  stages (s)  : " + ", ".join(f"{k} {v:.1f}" for k, v in d["stage_seconds"].items()))
    budget = 2 * d["group_size"] + WORKER_OVERHEAD
    verdict = "within" if (f.worker_peak or 0) <= budget else "ABOVE"
    print(f"  worker RSS  : max {mib(f.worker_peak)} MiB vs 2 x group size + 300 MiB = {mib(budget)} MiB ({verdict})")
    for w in d["workers"]:
        phases = ", ".join(f"{k} {mib(v)}" for k, v in w["hwm"].items() if k in ("etl", "compact", "other"))
        print(f"    pid {w['pid']}: peak {mib(w['peak'])} MiB (sampled {mib(w['sampled'])}; per stage: {phases})")
    print(f"  orchestrator: peak {mib(f.peak_rss)} MiB" + ("" if d["hwm_resettable"] else " (sampled only)"))
    if d["other_children"]:
        print("  other children: " + ", ".join(f"pid {p} {r} {mib(b)} MiB" for p, r, b in d["other_children"]))
    print(
        f"  output      : {f.output}, {mib(f.output.total)} MiB in total; validation "
        f"{'OK' if d['validation_ok'] else 'FAILED'}; files within ±10% of {mib(d['target'])} MiB "
        f"(each partition's smallest excepted): {near_target_text(f)}"
    )


def print_partitions(f: Figures) -> None:
    parts = f.details["partitions"]
    target = f.details["target"]
    sizes = [b for _, b in parts.values()]
    big = sum(1 for b in sizes if b > target)
    print(
        f"\n{f.name}: {len(parts)} partitions in the data lake, {mib(min(sizes))} / "
        f"{mib(statistics.median(sizes))} / {mib(max(sizes))} MiB (min / median / max), {big} larger than "
        f"the {mib(target)} MiB target"
    )
    cells = [f"{p or '(none)'}: {mib(b)} MiB/{n}f" for p, (n, b) in sorted(parts.items())]
    for i in range(0, len(cells), 3):
        print("  " + "".join(c.ljust(36) for c in cells[i : i + 3]))


def print_scale(small: Figures, large: Figures) -> None:
    print("\nmemory flatness (ours at S and 4S, same group size):")
    headers = [
        "size",
        "files",
        "group size",
        "seconds",
        "MiB/s",
        "peak RSS worker",
        "ETL peak",
        "compact peak",
        "orchestrator",
    ]
    rows = []
    for f in (small, large):

        def phase_max(phase: str, f: Figures = f) -> int:
            return max((w["hwm"].get(phase, 0) for w in f.details["workers"]), default=0)

        rows.append(
            [
                f"{mib(f.input_bytes)} MiB",
                str(f.input_files),
                f"{mib(f.details['group_size'])} MiB",
                f"{f.seconds:.1f}",
                f"{f.mib_per_second:.1f}",
                mib(f.worker_peak),
                mib(phase_max("etl")),
                mib(phase_max("compact")),
                mib(f.peak_rss),
            ]
        )
    print_table(headers, rows)
    ratio = (large.worker_peak or 0) / max(1, small.worker_peak or 0)
    print(f"peak RSS per worker at 4S / at S = {ratio:.2f} (flat would be about 1.0)")


# ---- main --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1GB", help="snapshot size, e.g. 1GB, 200MB (default 1GB)")
    p.add_argument("--files", type=int, default=500, help="snapshot files (default 500)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument(
        "--partition-by",
        default="year",
        help="partition keys among year,month (default year: three partitions of ~100-300 MB of Parquet, two "
        "above the 128 MB target, so files are cut and sizes can be judged)",
    )
    p.add_argument("--target", default="128MB", help="target data-lake file size (default 128MB)")
    p.add_argument("--group-size", default=None, help="fix the ETL group size (default: the planner chooses)")
    p.add_argument("--no-baselines", action="store_true", help="skip Polars and DuckDB")
    p.add_argument("--baselines", default=",".join(BASELINES), help=f"which baselines ({','.join(BASELINES)})")
    p.add_argument("--scale-check", action="store_true", help="also run ours at size/4 (with files/4)")
    p.add_argument("--s3", action="store_true", help="also run ours against a local moto S3 server")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="cache and scratch folder (default bench/out)")
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    return p.parse_args(argv)


def to_json(figures: Sequence[Figures]) -> list[dict[str, Any]]:
    out = []
    for f in figures:
        item = {k: v for k, v in vars(f).items() if k != "output"}
        item["output"] = vars(f.output)
        item["mib_per_second"] = f.mib_per_second
        out.append(item)
    return out


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "_baseline":
        baseline_main(argv[1], argv[2], argv[3], argv[4].split(","))
        return 0
    args = parse_args(argv)
    out = Path(args.out).resolve()
    size, keys = parse_size(args.size), tuple(k for k in args.partition_by.split(",") if k)
    settings = OursSettings(
        workers=args.workers,
        partition_by=keys,
        target_file_size=parse_size(args.target),
        group_size=parse_size(args.group_size) if args.group_size else None,
    )
    runs = out / "runs"
    dataset = ensure_dataset(out, size, args.files)
    log(f"snapshot: {dataset.n_files} files, {mib(dataset.size)} MiB, {dataset.n_rows:,} rows")

    ours = run_ours("dbsnaplake (local)", dataset, str(runs / "ours"), settings)
    figures = [ours]
    if not args.no_baselines:
        for kind in [k for k in args.baselines.split(",") if k]:
            figures.append(run_baseline(kind, dataset, runs / kind, keys))
    small = None
    if args.scale_check:
        small_dataset = ensure_dataset(out, size // 4, max(1, args.files // 4))
        pinned = dataclasses.replace(settings, group_size=ours.details["group_size"])  # same groups, 1/4 the data
        small = run_ours("dbsnaplake (local, S/4)", small_dataset, str(runs / "ours-small"), pinned)
    on_s3 = run_ours_on_s3(dataset, settings) if args.s3 else None
    if on_s3:
        figures.append(on_s3)

    print("\n" + "=" * 100)
    print(
        f"snapshot: {dataset.n_files} files, {mib(dataset.size)} MiB, {dataset.n_rows:,} rows; "
        f"partition by {','.join(keys)}; sort by {SORT_COLUMN}; {args.workers} workers; "
        f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 1024**3:.0f} GiB"
    )
    for f in [ours, *([small] if small else []), *([on_s3] if on_s3 else [])]:
        print_ours(f)
    print_partitions(ours)
    print()
    print_main_table(figures + ([small] if small else []), ours)
    polars = next((f for f in figures if f.name == "polars"), None)
    if polars:
        ratio = ours.seconds / polars.seconds
        print(f"ours / Polars time = {ratio:.2f}x (aim <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})")
    share, judged = ours.details["files_near_target"], ours.details["files_judged"]
    verdict = "n/a: every partition fits in one file" if not judged else "met" if share >= 0.95 else "NOT met"
    print(f"ours files within ±10% of target = {near_target_text(ours)} (aim >= 95%: {verdict})")
    if small:
        print_scale(small, ours)
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(figures + ([small] if small else [])), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
