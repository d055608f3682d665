"""Benchmark, one command: ours against Polars, DuckDB and the original dbsnaplake 0.3.2, plus a scaling table.

    python bench/bench_compare.py                      # 256 MiB, 3 rounds (about 10 minutes on 2 cores)
    python bench/bench_compare.py --size 1GB --files 500
    python bench/bench_compare.py --scaling --no-compare --rows data,files,partitions,big

Every tool runs as a separate process started here, exactly as a user would run it, and is measured from
outside: wall seconds (start to exit, interpreter start-up included), CPU-seconds (user + system of the whole
process tree: ``wait4``'s usage, which includes every reaped descendant, or the sum over the processes seen if
larger), the peak RSS of every process of the tree (a thread samples RSS and the kernel's ``VmHWM`` of each
process every 50 ms), and the output files (count, sizes, rows, sorted within files). See ``bench/README.md``.

The comparison (same snapshot, same logical job: add year and month from ``order_time``, partition by
``--partition-by``, sort by ``order_time`` within files, 128 MiB target files), ``--rounds`` rounds (default 3),
the tools interleaved in each round, medians reported:

* ours, local disk: ``dbsnaplake run --manifest ... --output json`` (process pool, ``--workers``);
* ours, S3: the same against a moto S3 server on 127.0.0.1 started here (the snapshot uploaded once);
* Polars: ``scan_parquet -> with_columns(year, month) -> sort -> sink_parquet(PartitionBy)`` (bench_pipeline.py);
* DuckDB: ``COPY (SELECT ...) TO ... (PARTITION_BY, ORDER_BY order_time)`` (bench_pipeline.py);
* two-pass floor: Polars doing what our two stages do at the least: the Polars job into a scratch folder, then
  each partition read back, sorted and written again; its CPU-seconds are the floor ours is judged against;
* the original dbsnaplake 0.3.2 on S3 (``bench/peer/run_original.py`` in its own venv, ``bench/out/venv-peer``,
  created here on first use from ``bench/peer/requirements-peer.lock.txt``), on the same moto server and the
  same uploaded files.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_pipeline as bp
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from bench_pipeline import SORT_COLUMN, Dataset, MiB, ensure_dataset, log, mib

from dbsnaplake import storage
from dbsnaplake.api import parse_size
from dbsnaplake.demo import orders_table
from tests.support.s3_server import local_s3_server

HERE = Path(__file__).resolve().parent
PEER_DIR = HERE / "peer"
PEER_LOCK = PEER_DIR / "requirements-peer.lock.txt"
PEER_SCRIPT = PEER_DIR / "run_original.py"
STAGING_LEAF = "snapshot=2024-01-01T00:00:00Z"
NEAR = 0.10


# ---- measuring one process tree ------------------------------------------------------------------------------


@dataclass
class ProcessSeen:
    role: str
    peak: int = 0
    cpu: float = 0.0


def role_of(process: psutil.Process, root_pid: int) -> str:
    if process.pid == root_pid:
        return "main"
    return bp.role_of(process)


@dataclass
class Measured:
    """One process tree's run: wall and CPU seconds, peak RSS of each process, what it printed."""

    wall: float
    cpu: float
    processes: dict[int, ProcessSeen]
    returncode: int
    stdout: str
    stderr_tail: str
    moto_cpu: float | None = None
    load: float = 0.0
    """The 1-minute load average when the run started (the machine is shared)."""

    @property
    def worker_peak(self) -> int:
        """Peak RSS of the largest worker; a tool without workers is its own (only) worker."""
        workers = [p.peak for p in self.processes.values() if p.role == "worker"]
        return max(workers) if workers else self.main_peak

    @property
    def main_peak(self) -> int:
        return max((p.peak for p in self.processes.values() if p.role == "main"), default=0)


class TreeSampler:
    """Samples RSS, the kernel high-water mark and CPU times of a process and all its descendants every 50 ms."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.seen: dict[int, ProcessSeen] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(bp.SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for process in tree:
            try:
                with process.oneshot():
                    rss = process.memory_info().rss
                    times = process.cpu_times()
                seen = self.seen.get(process.pid) or ProcessSeen(role_of(process, self.root.pid))
                self.seen[process.pid] = seen
                seen.peak = max(seen.peak, rss, bp.read_hwm(process.pid))
                seen.cpu = max(seen.cpu, times.user + times.system)
            except psutil.Error:
                continue


def measure(command: Sequence[str], moto_pid: int | None = None, env: dict[str, str] | None = None) -> Measured:
    """Run ``command`` to its end while sampling its process tree; CPU from ``wait4`` (the tree's reaped total)."""
    moto = psutil.Process(moto_pid) if moto_pid else None
    moto_before = sum(moto.cpu_times()[:2]) if moto else 0.0
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(list(command), stdout=out, stderr=err, text=True, env=env)
        with TreeSampler(psutil.Process(process.pid)) as sampler:
            _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    main = sampler.seen.setdefault(process.pid, ProcessSeen("main"))
    main.peak = max(main.peak, usage.ru_maxrss * 1024 if len(sampler.seen) == 1 else 0)
    cpu = max(usage.ru_utime + usage.ru_stime, sum(p.cpu for p in sampler.seen.values()))
    moto_cpu = sum(moto.cpu_times()[:2]) - moto_before if moto else None
    return Measured(wall, cpu, sampler.seen, process.returncode, stdout, stderr[-3000:], moto_cpu, load)


# ---- output files --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    sizes: dict[str, list[int]]
    """File sizes per partition folder."""
    rows: int
    sorted: bool

    @property
    def all_sizes(self) -> list[int]:
        return sorted(s for sizes in self.sizes.values() for s in sizes)

    def near_target(self, target: int) -> tuple[float | None, int]:
        """Share of files within ±10 % of ``target``, each partition's smallest file excepted (as validate does)."""
        judged = [s for sizes in self.sizes.values() for s in sorted(sizes)[1:]]
        if not judged:
            return None, 0
        return sum(1 for s in judged if abs(s - target) <= NEAR * target) / len(judged), len(judged)


def inspect(root: str) -> Output:
    files = [i for i in storage.list_files(root) if i.uri.endswith(".parquet")]
    sizes: dict[str, list[int]] = {}
    rows, ordered = 0, True
    for info in files:
        with storage.open_input_file(info.uri, info.size) as f:
            rows += pq.ParquetFile(f).metadata.num_rows
        ordered = ordered and bp.is_sorted_file(info.uri, info.size)
        sizes.setdefault(bp.partition_of(info.uri, root), []).append(info.size)
    return Output(sizes, rows, ordered)


# ---- the tools -----------------------------------------------------------------------------------------------


@dataclass
class Run:
    tool: str
    measured: Measured
    output: Output
    input_bytes: int
    input_rows: int
    target: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def mib_s(self) -> float:
        return self.input_bytes / MiB / self.measured.wall

    @property
    def rows_ok(self) -> bool:
        return self.output.rows == self.input_rows


@dataclass(frozen=True)
class Job:
    partition_by: tuple[str, ...]
    transform: str
    target: int
    workers: int
    worker_memory: str | None = None
    extra: tuple[str, ...] = ()


def dbsnaplake_command() -> list[str]:
    exe = shutil.which("dbsnaplake", path=os.path.dirname(sys.executable))
    if not exe:
        raise SystemExit("the dbsnaplake command is not installed next to this Python: pip install -e .")
    return [exe]


def run_ours(tool: str, dataset: Dataset, root: str, job: Job, moto_pid: int | None = None) -> Run:
    """``dbsnaplake run`` on a prepared manifest, fresh staging and data lake under ``root``."""
    storage.delete_folder(root)
    staging, lake = storage.join(root, "staging", STAGING_LEAF), storage.join(root, "datalake")
    command = [
        *dbsnaplake_command(),
        "run",
        *("--manifest", dataset.manifest, "--staging", staging, "--datalake", lake),
        *("--partition-by", ",".join(job.partition_by), "--sort-by", SORT_COLUMN, "--transform", job.transform),
        *("--workers", str(job.workers), "--target-file-size", str(job.target), "--output", "json"),
        *(("--worker-memory", job.worker_memory) if job.worker_memory else ()),
        *job.extra,
    ]
    log(f"{tool}: {mib(dataset.size)} MiB, {dataset.n_files} files -> {root}")
    measured = measure(command, moto_pid)
    if measured.returncode != 0:
        raise RuntimeError(f"{tool} failed ({measured.returncode}):\n{measured.stderr_tail}")
    table = json.loads(measured.stdout)["tables"][0]
    validation = table["validation"]
    details = {
        "stage_seconds": table["seconds"],
        "group_size": table["group_size"]["size"],
        "groups": table["groups"],
        "files_near_target": validation["files_near_target"],
        "files_judged": validation["files_judged"],
    }
    log(
        f"{tool}: {measured.wall:.1f}s wall, {measured.cpu:.1f} CPU-s, peak RSS per worker "
        f"{mib(measured.worker_peak)} MiB, groups {details['groups']}; checking the output"
    )
    output = inspect(lake)
    storage.delete_folder(root)
    return Run(tool, measured, output, dataset.size, dataset.n_rows, job.target, details)


def run_script_tool(tool: str, command: Sequence[str], dataset: Dataset, lake: str, target: int) -> Run:
    log(f"{tool}: {' '.join(command[1:3])} ...")
    measured = measure(command)
    if measured.returncode != 0:
        raise RuntimeError(f"{tool} failed ({measured.returncode}):\n{measured.stderr_tail}")
    log(f"{tool}: {measured.wall:.1f}s wall, {measured.cpu:.1f} CPU-s; checking the output")
    return Run(tool, measured, inspect(lake), dataset.size, dataset.n_rows, target)


def run_baseline(kind: str, dataset: Dataset, dest: Path, job: Job) -> Run:
    shutil.rmtree(dest, ignore_errors=True)
    command = [sys.executable, str(HERE / "bench_pipeline.py"), "_baseline", kind, dataset.manifest, str(dest)]
    run = run_script_tool(kind, [*command, ",".join(job.partition_by)], dataset, str(dest), job.target)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(f"{dest}.duckdb-tmp", ignore_errors=True)
    return run


def floor_job(manifest: str, dest: str, keys: list[str]) -> None:
    """The two-pass floor, in the child process: the Polars job, then each partition read, sorted, written again."""
    import polars as pl

    from dbsnaplake.api import read_manifest

    uris = [str(u) for u in read_manifest(manifest).column("uri")]
    first, lake = Path(dest) / "pass1", Path(dest) / "lake"
    bp.polars_job(uris, str(first), keys)
    for folder in sorted({p.parent for p in first.rglob("*.parquet")}):
        out = lake / folder.relative_to(first) / "data.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        pl.scan_parquet(str(folder / "*.parquet")).sort(SORT_COLUMN).sink_parquet(str(out))


def run_floor(dataset: Dataset, dest: Path, job: Job) -> Run:
    shutil.rmtree(dest, ignore_errors=True)
    command = [sys.executable, __file__, "_floor", dataset.manifest, str(dest), ",".join(job.partition_by)]
    run = run_script_tool("two-pass floor", command, dataset, str(dest / "lake"), job.target)
    shutil.rmtree(dest, ignore_errors=True)
    return run


# ---- the original dbsnaplake 0.3.2 -----------------------------------------------------------------------------


def peer_python(out: Path) -> Path:
    """The original's venv (created on first use from the lock file, plus numpy>=2 that pyarrow 26 needs)."""
    venv = out / "venv-peer"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python
    log(f"creating {venv} for the original dbsnaplake 0.3.2 (about a minute)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(PEER_LOCK)], check=True)
    subprocess.run([*pip, "numpy>=2"], check=True)
    version = subprocess.run(
        [str(python), "-c", "import dbsnaplake; print(dbsnaplake.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if version != "0.3.2":
        raise SystemExit(f"{venv} has dbsnaplake {version}, not 0.3.2: remove the folder and run again")
    marker.write_text(version)
    return python


def peer_files_json(local: Dataset, on_s3: Dataset, path: Path) -> Path:
    """The uploaded files as the original's manifest wants them: uri, size, n_record (local footers), etag."""
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    bucket, prefix = on_s3.folder.removeprefix("s3://").split("/", 1)
    files = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[1]
            rows = pq.read_metadata(Path(local.folder) / name).num_rows
            uri = f"s3://{bucket}/{obj['Key']}"
            files.append({"uri": uri, "size": obj["Size"], "n_record": rows, "etag": obj["ETag"].strip('"')})
    path.write_text(json.dumps(files))
    return path


def run_original(python: Path, files_json: Path, on_s3: Dataset, job: Job, moto_pid: int, round_no: int) -> Run:
    root = f"s3://{bp.S3_BUCKET}/original-{round_no}"
    storage.delete_folder(root)
    command = [
        str(python),
        str(PEER_SCRIPT),
        *("--files-json", str(files_json), "--root", root, "--partition-by", ",".join(job.partition_by)),
        *("--target", str(job.target), "--tracker-table", f"dbsnaplake-tracker-{round_no}"),
    ]
    log(f"original 0.3.2: -> {root}")
    measured = measure(command, moto_pid)
    lines = [line[len("RESULT ") :] for line in measured.stdout.splitlines() if line.startswith("RESULT ")]
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    if measured.returncode != 0:
        raise RuntimeError(f"the original failed ({measured.returncode}): {result}\n{measured.stderr_tail}")
    log(f"original 0.3.2: {measured.wall:.1f}s wall, {measured.cpu:.1f} CPU-s; checking the output")
    output = inspect(storage.join(root, "datalake"))
    storage.delete_folder(root)
    return Run("original 0.3.2 (S3)", measured, output, on_s3.size, on_s3.n_rows, job.target, result)


# ---- the comparison ----------------------------------------------------------------------------------------------


def compare(args: argparse.Namespace, out: Path) -> None:
    size = parse_size(args.size)
    dataset = ensure_dataset(out, size, args.files)
    keys = tuple(k for k in args.partition_by.split(",") if k)
    job = Job(keys, bp.YEAR_MONTH, parse_size(args.target), args.workers, args.worker_memory)
    tools = [t for t in args.tools.split(",") if t]
    runs_dir = out / "runs"
    python = peer_python(out) if "original" in tools else None
    runs: dict[str, list[Run]] = {}
    with local_s3_server() as server:
        # uploaded only when an S3 tool runs (the local dataset and an empty path stand in, unused, otherwise)
        on_s3 = bp.upload_dataset(dataset) if {"ours-s3", "original"} & set(tools) else dataset
        files_json = peer_files_json(dataset, on_s3, out / "peer-files.json") if python else Path()
        actions: dict[str, Callable[[int], Run]] = {
            "ours": lambda r: run_ours("ours (local)", dataset, str(runs_dir / "ours"), job),
            "ours-s3": lambda r: run_ours("ours (S3)", on_s3, f"s3://{bp.S3_BUCKET}/ours", job, server.process.pid),
            "polars": lambda r: run_baseline("polars", dataset, runs_dir / "polars", job),
            "duckdb": lambda r: run_baseline(args.duckdb, dataset, runs_dir / "duckdb", job),
            "floor": lambda r: run_floor(dataset, runs_dir / "floor", job),
            "original": lambda r: run_original(python or Path(), files_json, on_s3, job, server.process.pid, r),
        }
        for round_no in range(1, args.rounds + 1):
            log(f"---- round {round_no}/{args.rounds}")
            for tool in tools:
                runs.setdefault(tool, []).append(actions[tool](round_no))
    print("\n" + "=" * 110)
    print(
        f"snapshot: {dataset.n_files} files, {mib(dataset.size)} MiB, {dataset.n_rows:,} rows; job: year/month from "
        f"{SORT_COLUMN}, partition by {','.join(keys)}, sort by {SORT_COLUMN}, target {mib(job.target)} MiB; "
        f"ours --workers {args.workers}; median of {args.rounds} rounds; machine: {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 1024**3:.0f} GiB, load average now {os.getloadavg()[0]:.1f}"
    )
    print_compare(runs, tools)


def med(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> str:
    return f"{med(values):.1f} ({min(values):.1f}-{max(values):.1f})" if len(values) > 1 else f"{values[0]:.1f}"


def checked_cells(runs: Sequence[Run]) -> list[str]:
    """The last cells of a table row: share of files near the target (first run), rows right and sorted in every
    run, the median load at the runs' start."""
    first = runs[0]
    return [
        share_text(*first.output.near_target(first.target)),
        "ok" if all(r.rows_ok for r in runs) else "WRONG",
        "yes" if all(r.output.sorted for r in runs) else "NO",
        f"{med([r.measured.load for r in runs]):.1f}",
    ]


def share_text(share: float | None, judged: int) -> str:
    return "n/a (0 judged)" if share is None else f"{share:.0%} of {judged}"


def print_compare(runs: dict[str, list[Run]], tools: Sequence[str]) -> None:
    headers = ["tool", "wall s (min-max)", "CPU-s", "MiB/s", "peak RSS/worker", "main RSS", "moto CPU-s"]
    headers += ["files", "MiB total", "min/med/max MiB", "±10% of target", "rows", "sorted", "load"]
    rows = []
    for tool in tools:
        group = runs[tool]
        first = group[0]
        sizes = first.output.all_sizes
        moto = [r.measured.moto_cpu for r in group if r.measured.moto_cpu is not None]
        rows.append(
            [
                first.tool,
                spread([r.measured.wall for r in group]),
                f"{med([r.measured.cpu for r in group]):.1f}",
                f"{med([r.mib_s for r in group]):.1f}",
                mib(med([r.measured.worker_peak for r in group])),
                mib(med([r.measured.main_peak for r in group])),
                f"{med(moto):.1f}" if moto else "-",
                str(len(sizes)),
                mib(sum(sizes)),
                f"{mib(sizes[0])}/{mib(statistics.median(sizes))}/{mib(sizes[-1])}" if sizes else "-",
                *checked_cells(group),
            ]
        )
    bp.print_table(headers, rows)
    print(
        "(wall = process start to exit, start-up included; CPU-s = user+sys of the whole process tree; MiB/s = "
        "snapshot MiB / wall; peak RSS in MiB: per worker = largest pool worker (the process itself for "
        "single-process tools), main = the command's own process; moto CPU-s = the S3 server's CPU during the "
        "run, not in CPU-s; files etc. from the first round; load = 1-minute load average at the run's start)"
    )
    print_ratios(runs)
    ours = runs.get("ours")
    if ours:
        stages = {k: med([r.details["stage_seconds"][k] for r in ours]) for k in ours[0].details["stage_seconds"]}
        print("ours (local) stages, median s: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))


def print_ratios(runs: dict[str, list[Run]]) -> None:
    def wall(tool: str) -> float | None:
        return med([r.measured.wall for r in runs[tool]]) if tool in runs else None

    def cpu(tool: str) -> float | None:
        return med([r.measured.cpu for r in runs[tool]]) if tool in runs else None

    lines = [
        ("ours/Polars wall", wall("ours"), wall("polars"), 1.5, "<="),
        ("ours/Polars CPU-s", cpu("ours"), cpu("polars"), None, ""),
        ("ours/DuckDB wall", wall("ours"), wall("duckdb"), None, ""),
        ("ours/DuckDB CPU-s", cpu("ours"), cpu("duckdb"), None, ""),
        ("ours CPU-s / two-pass floor CPU-s", cpu("ours"), cpu("floor"), 1.3, "<="),
        ("ours S3/local wall", wall("ours-s3"), wall("ours"), None, ""),
        ("original/ours wall (S3)", wall("original"), wall("ours-s3"), 2.0, ">="),
        ("original/ours CPU-s (S3)", cpu("original"), cpu("ours-s3"), None, ""),
    ]
    print("\nratios (of medians):")
    for name, a, b, aim, op in lines:
        if a is None or b is None:
            continue
        ratio = a / b
        verdict = ""
        if aim is not None:
            met = ratio <= aim if op == "<=" else ratio >= aim
            verdict = f"   aim {op} {aim}x: {'met' if met else 'NOT met'}"
        print(f"  {name:<36} {ratio:6.2f}x{verdict}")


# ---- the scaling table -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    family: str
    label: str
    x: float
    """What doubles along the family (bytes, files, partitions)."""
    job: Job
    dataset: Callable[[], Dataset]
    """Generates the row's snapshot on first use (cached)."""


def bucket_transform(n: int) -> str:
    return f"SELECT *, CAST(customer_id % {n} AS VARCHAR) AS bucket FROM snapshot"


def big_file_bytes_per_row(rng: np.random.Generator, total_rows_guess: int, chunk: int) -> float:
    """Snappy Parquet bytes per row in row groups of ``chunk`` rows (they compress better than small files)."""
    sample = orders_table(0, chunk, rng, total_rows_guess)
    sink = pa.BufferOutputStream()
    pq.write_table(sample, sink, compression="snappy", row_group_size=chunk)
    return float(sink.getvalue().size / sample.num_rows)


def ensure_big_file(out: Path, size: int) -> Dataset:
    """One Parquet file of ``size`` bytes, written in 1M-row row groups (generating it whole would not fit)."""
    from dbsnaplake.api import build_manifest, read_manifest

    root = out / "data" / f"orders-{size // MiB}MiB-1bigfile"
    snapshot, manifest = root / "snapshot", root / "manifest" / "manifest-summary.json"
    if not manifest.exists():
        log(f"generating one {mib(size)} MiB file under {root}")
        shutil.rmtree(root, ignore_errors=True)
        snapshot.mkdir(parents=True)
        rng = np.random.default_rng(42)
        chunk = 1_000_000
        n_rows = int(size / big_file_bytes_per_row(rng, int(size / 40), chunk))
        first = orders_table(0, min(chunk, n_rows), rng, n_rows)
        with pq.ParquetWriter(snapshot / "part-00000.snappy.parquet", first.schema, compression="snappy") as w:
            w.write_table(first)
            for start in range(chunk, n_rows, chunk):
                w.write_table(orders_table(start, min(chunk, n_rows - start), rng, n_rows))
        build_manifest(str(snapshot), str(manifest))
    m = read_manifest(str(manifest))
    return Dataset(str(snapshot), str(manifest), m.n_file, m.size, int(m.n_record or 0))


def scaling_rows(args: argparse.Namespace, out: Path) -> list[Row]:
    base = parse_size(args.base_size)
    memory, workers, target = args.scaling_worker_memory, args.workers, parse_size(args.scaling_target)
    year = Job(("year",), bp.YEAR_MONTH, target, workers, memory)
    rows: list[Row] = []
    for factor in [float(f) for f in args.data_factors.split(",")]:
        size = int(base * factor)
        files = max(1, round(size / (2 * MiB)))
        rows.append(
            Row(
                "data",
                f"{factor:g}x = {mib(size)} MiB, {files} files",
                size,
                year,
                functools.partial(ensure_dataset, out, size, files),
            )
        )
    for n in [int(n) for n in args.file_counts.split(",")]:
        rows.append(
            Row(
                "files",
                f"{n:,} files, {mib(base)} MiB of rows",
                n,
                year,
                functools.partial(ensure_dataset, out, base, n),
            )
        )
    for n in [int(n) for n in args.partition_counts.split(",")]:
        job = Job(("bucket",), bucket_transform(n), target, workers, memory, ("--min-partition-size", "1"))
        rows.append(
            Row(
                "partitions",
                f"{n:,} partitions (customer_id % {n})",
                n,
                job,
                functools.partial(ensure_dataset, out, base, max(1, round(base / (2 * MiB)))),
            )
        )
    big, big_memory = parse_size(args.big_file), args.big_worker_memory
    big_job = Job(("year",), bp.YEAR_MONTH, target, 1, big_memory)
    big_row = Row(
        "big", f"1 file of {mib(big)} MiB, --workers 1", big, big_job, functools.partial(ensure_big_file, out, big)
    )
    rows.append(big_row)
    wanted = {r for r in args.rows.split(",") if r}
    return [r for r in rows if r.family in wanted]


def scaling(args: argparse.Namespace, out: Path) -> None:
    rows = scaling_rows(args, out)
    results: list[tuple[Row, Job, list[Run]]] = []
    for row in rows:
        dataset, job = row.dataset(), row.job
        runs = [
            run_ours(f"scaling {row.family}: {row.label}", dataset, str(out / "runs" / "scaling"), job)
            for _ in range(args.repeat)
        ]
        results.append((row, job, runs))
    print("\n" + "=" * 110)
    print(
        f"scaling table: ours on local disk, median of {args.repeat}; base size {mib(parse_size(args.base_size))} MiB; "
        f"target {args.scaling_target}; machine: {os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}"
    )
    headers = [
        "family",
        "row",
        "input MiB",
        "wall s",
        "CPU-s",
        "MiB/s",
        "x per doubling",
        "peak RSS/worker",
        "--worker-memory",
        "within",
        "groups etl/compact",
        "files",
        "±10% of target",
        "rows",
        "sorted",
        "load",
    ]
    table = []
    previous: dict[str, tuple[float, float]] = {}
    for row, job, runs in results:
        wall = med([r.measured.wall for r in runs])
        peak = max(r.measured.worker_peak for r in runs)
        memory = parse_size(job.worker_memory) if job.worker_memory else None
        doubling = "-"
        if row.family in previous and row.family != "big":
            x0, t0 = previous[row.family]
            doubling = f"{(wall / t0) ** (1 / math.log2(row.x / x0)):.2f}x"
        previous[row.family] = (row.x, wall)
        first = runs[0]
        groups = first.details["groups"]
        table.append(
            [
                row.family,
                row.label,
                mib(first.input_bytes),
                f"{wall:.1f}",
                f"{med([r.measured.cpu for r in runs]):.1f}",
                f"{med([r.mib_s for r in runs]):.1f}",
                doubling,
                mib(peak),
                mib(memory) if memory else "default",
                "-" if memory is None else "yes" if peak <= memory else "NO",
                f"{groups['etl']}/{groups['compact']}",
                str(len(first.output.all_sizes)),
                *checked_cells(runs),
            ]
        )
    bp.print_table(headers, table)
    print(
        "(x per doubling = (wall / previous row's wall) ^ (1 / log2(x / previous x)) along the family: 2.0 is "
        "linear, aim <= 2.3; peak RSS/worker = the largest pool worker's peak (max over repeats), in MiB)"
    )


# ---- main ----------------------------------------------------------------------------------------------------------

TOOLS = "ours,ours-s3,polars,duckdb,floor,original"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="256MB", help="snapshot size of the comparison (default 256MB)")
    p.add_argument("--files", type=int, default=125, help="snapshot files of the comparison (default 125)")
    p.add_argument("--partition-by", default="year,month", help="year or year,month (default year,month)")
    p.add_argument("--target", default="128MB", help="target data-lake file size (default 128MB)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="ours: --workers (default: cores)")
    p.add_argument("--worker-memory", default=None, help="ours in the comparison: --worker-memory (default: ours')")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the comparison; medians reported (default 3)")
    p.add_argument("--tools", default=TOOLS, help=f"which to run, in this order in each round (default {TOOLS})")
    p.add_argument(
        "--duckdb",
        default="duckdb-order_by",
        choices=["duckdb-order_by", "duckdb"],
        help="DuckDB sorting with the COPY option ORDER_BY (default) or ORDER BY in the query",
    )
    p.add_argument("--no-compare", action="store_true", help="skip the comparison")
    p.add_argument("--scaling", action="store_true", help="also print the scaling table")
    p.add_argument("--rows", default="data,files,partitions,big", help="scaling rows: data,files,partitions,big")
    p.add_argument("--base-size", default="128MB", help="scaling: the 1x data size (default 128MB)")
    p.add_argument("--data-factors", default="0.25,1,4", help="scaling: data sizes as factors of --base-size")
    p.add_argument("--file-counts", default="500,20000,50000", help="scaling: file counts at --base-size")
    p.add_argument("--partition-counts", default="10,100,5000", help="scaling: partition counts at --base-size")
    p.add_argument("--big-file", default="2GB", help="scaling: the one big file's size (default 2GB)")
    p.add_argument("--big-worker-memory", default="1GB", help="scaling: --worker-memory of the big-file row")
    p.add_argument("--scaling-worker-memory", default="1GB", help="scaling: --worker-memory of the other rows")
    p.add_argument("--scaling-target", default="32MB", help="scaling: --target-file-size (default 32MB)")
    p.add_argument("--repeat", type=int, default=1, help="scaling: runs per row, median reported (default 1)")
    p.add_argument("--out", default=str(bp.DEFAULT_OUT), help="cache and scratch folder (default bench/out)")
    return p.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "_floor":
        floor_job(argv[1], argv[2], argv[3].split(","))
        return 0
    args = parse_args(argv)
    out = Path(args.out).resolve()
    if not args.no_compare:
        compare(args, out)
    if args.scaling:
        scaling(args, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
