"""Drive dbsnaplake's stages from a Dask client: plan here, one Dask task per group, validate here.

Only group manifest URIs travel to the workers: the plan records the settings, and each worker reads them from its
group manifest's header, then reads the snapshot and writes the lake itself. Every group task is idempotent (it overwrites its own outputs), so the task
retries below, and Dask rerunning the tasks of a worker that died, are safe. A ``module:function`` transform must
be importable on every worker.

    python examples/dask_driver.py --manifest ./snapshot/manifest-summary.json --staging ./staging \
        --datalake ./lake --partition-by year --sort-by order_time \
        --transform "SELECT *, CAST(EXTRACT(YEAR FROM order_time) AS VARCHAR) AS year FROM snapshot"
    python examples/dask_driver.py --scheduler tcp://scheduler:8786 ...   # an existing cluster, not a local one
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from distributed import Client, LocalCluster

from dbsnaplake.api import (
    PipelineConfig,
    S3Location,
    compact,
    etl,
    format_size,
    parse_size,
    parse_sort_keys,
    plan,
    plan_compaction,
    publish,
    validate,
)

R = TypeVar("R")
TASK_RETRIES = 2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: start a local cluster)")
    p.add_argument("--local-workers", type=int, default=2, help="worker processes of the local cluster (default 2)")
    p.add_argument("--manifest", required=True, help="snapshot manifest summary JSON")
    p.add_argument("--staging", required=True, help="staging root: state, manifests and staging lake")
    p.add_argument("--datalake", required=True, help="root of the final data lake")
    p.add_argument("--partition-by", default="", help="partition columns, comma-separated: year,month")
    p.add_argument("--sort-by", default="", help="sort keys: col or col:desc, comma-separated")
    p.add_argument("--transform", default=None, help="Polars SQL over table 'snapshot', or module:function")
    p.add_argument("--target-file-size", default="128MB", help="data lake file size (default 128MB)")
    return p.parse_args(argv)


@contextlib.contextmanager
def connect(scheduler: str | None, local_workers: int) -> Iterator[Client]:
    """A client of the given scheduler, or of a new local cluster of single-threaded worker processes (stopped
    on exit)."""
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    threads = str(max(1, (os.cpu_count() or 1) // local_workers))  # share the cores, as the process pool does
    env = {"POLARS_MAX_THREADS": threads, "OMP_NUM_THREADS": threads}
    cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, dashboard_address=None, env=env)
    with cluster, Client(cluster) as client:
        yield client


def make_config(args: argparse.Namespace, client: Client) -> PipelineConfig:
    """The CLI's settings, with ``workers`` and ``worker_memory`` taken from the cluster, so that planning sizes
    the groups for the workers that will run them."""
    workers = client.scheduler_info()["workers"].values()
    limits = [w["memory_limit"] for w in workers if w.get("memory_limit")]
    return PipelineConfig(
        location=S3Location(s3uri_staging=args.staging, s3uri_datalake=args.datalake),
        snapshot_manifest=args.manifest,
        partition_by=tuple(c.strip() for c in args.partition_by.split(",") if c.strip()),
        sort_by=parse_sort_keys(args.sort_by),
        transform=args.transform,
        target_file_size=parse_size(args.target_file_size),
        workers=max(1, len(workers)),
        worker_memory=min(limits) if limits else None,
    )


def run_on_cluster(client: Client, worker: Callable[[str], R], uris: Sequence[str]) -> list[R]:
    """One task per group manifest URI, and nothing else: each worker reads its settings from the plan (the
    manifest's header). Gather raises the first task error (after its retries)."""
    futures = client.map(worker, uris, pure=False, retries=TASK_RETRIES)
    return list(client.gather(futures))


def timed(seconds: dict[str, float], stage: str, function: Callable[..., R], *args: object) -> R:
    start = time.perf_counter()
    result = function(*args)
    seconds[stage] = time.perf_counter() - start
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    seconds: dict[str, float] = {}
    with connect(args.scheduler, args.local_workers) as client:
        config = make_config(args, client)
        planned = timed(seconds, "plan", plan, config)  # in this process: it writes the plan and the group manifests
        etl_results = timed(seconds, "etl", run_on_cluster, client, etl, planned.group_manifests)
        compaction_plan = timed(seconds, "plan-compaction", plan_compaction, config)
        groups = compaction_plan.group_manifests
        compaction = timed(seconds, "compact", run_on_cluster, client, compact, groups)
        validation = timed(seconds, "validate", validate, config)  # raises ValidationError on a mismatch
        published = timed(seconds, "publish", publish, config)  # commits the validated lake for readers

    print(f"cluster   : {config.workers} workers ({args.scheduler or 'local cluster'})")
    print(f"plan      : {planned}")
    print(f"etl       : {len(etl_results)} groups, {sum(r.n_record_out for r in etl_results):,} records staged")
    files = [f for r in compaction for f in r.files]
    print(f"compact   : {len(compaction)} groups, {len(files)} files, {format_size(sum(f.size for f in files))}")
    print(f"validate  : {validation}")
    print(f"publish   : {published or 'already published'}")
    print("seconds   : " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    return 0 if validation.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
