"""Two versions of dbsnaplake, paired on one S3 server: the 1 GiB job on moto, their runs alternating.

    python bench/s3_pairs.py /tmp/old-checkout/src src --pairs 6

One moto server on 127.0.0.1 is started, the cached snapshot (``bench_pipeline.ensure_dataset``, 1 GiB in 500
files by default) is uploaded once and its manifest built on S3 by this checkout; then each pair runs ``dbsnaplake
run`` with ``PYTHONPATH`` set to either source tree (A first in even pairs, B first in odd ones), the job of the
comparison (year/month from ``order_time``, partition by year, sort by ``order_time``, 128 MiB target, ``--workers
2``). Each run's output is deleted from the server after it, so the server holds the same data for every run. It
prints each run (wall, our CPU, moto's CPU, the stages' seconds) and the medians, with B/A as the median of the
pairs' ratios: on a machine whose speed drifts by the hour, pairs run minutes apart are what compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bench_pipeline as bp
import boto3
import psutil
from bench_pipeline import local_s3_server

MiB = 1024**2


@dataclass(frozen=True)
class Run:
    wall: float
    ours_cpu: float
    moto_cpu: float
    seconds: dict[str, float]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(src: str, manifest: str, root: str, moto: psutil.Process) -> Run:
    command = [
        str(Path(sys.executable).with_name("dbsnaplake")), "-q", "run", "--manifest", manifest,
        "--staging", f"{root}/staging/snapshot=2024-01-01T00:00:00Z", "--datalake", f"{root}/datalake",
        "--partition-by", "year", "--sort-by", "order_time", "--transform", bp.YEAR_MONTH, "--workers", "2",
        "--target-file-size", "128MB", "--output", "json",
    ]  # fmt: skip
    moto_before, ours_before, start = sum(moto.cpu_times()[:2]), children_cpu(), time.perf_counter()
    done = subprocess.run(command, env=dict(os.environ, PYTHONPATH=src), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"the run of {src} failed:\n{done.stderr[-3000:]}")
    seconds = json.loads(done.stdout)["tables"][0]["seconds"]
    return Run(wall, children_cpu() - ours_before, sum(moto.cpu_times()[:2]) - moto_before, seconds)


def delete_prefix(client: object, prefix: str) -> None:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bp.S3_BUCKET, Prefix=prefix)  # type: ignore[attr-defined]
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    for start in range(0, len(keys), 1000):
        objects = [{"Key": key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=bp.S3_BUCKET, Delete={"Objects": objects})  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a_src", help="source tree A (a checkout's src/)")
    parser.add_argument("b_src", help="source tree B")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--size", type=bp.parse_size, default=1024 * MiB)
    parser.add_argument("--files", type=int, default=500)
    args = parser.parse_args()
    dataset = bp.ensure_dataset(Path(__file__).parent / "out", args.size, args.files)
    with local_s3_server() as server:
        on_s3 = bp.upload_dataset(dataset)
        client = boto3.client("s3")
        moto = psutil.Process(server.process.pid)
        runs: dict[str, list[Run]] = {"A": [], "B": []}
        for pair in range(args.pairs):
            order = [("A", args.a_src), ("B", args.b_src)]
            for label, src in order if pair % 2 == 0 else order[::-1]:
                prefix = f"pairs/{pair}{label}"
                run = run_once(src, on_s3.manifest, f"s3://{bp.S3_BUCKET}/{prefix}", moto)
                runs[label].append(run)
                stages = " ".join(f"{stage} {s:.1f}" for stage, s in run.seconds.items())
                print(f"pair {pair} {label}: wall {run.wall:5.1f} s, ours {run.ours_cpu:5.1f} CPU-s, moto "
                      f"{run.moto_cpu:5.1f} CPU-s; {stages}", flush=True)  # fmt: skip
                delete_prefix(client, prefix + "/")
    for name, value in (("wall s", "wall"), ("ours CPU-s", "ours_cpu"), ("moto CPU-s", "moto_cpu")):
        a = [getattr(r, value) for r in runs["A"]]
        b = [getattr(r, value) for r in runs["B"]]
        ratios = [y / x for x, y in zip(a, b, strict=True)]
        print(f"{name:11s} A {statistics.median(a):6.1f}  B {statistics.median(b):6.1f}  B/A {statistics.median(ratios):.3f}"
              f" (pairs {min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip
    for stage in runs["A"][0].seconds:
        a = statistics.median(r.seconds[stage] for r in runs["A"])
        b = statistics.median(r.seconds.get(stage, 0.0) for r in runs["B"])
        print(f"  {stage:16s} A {a:5.2f} s  B {b:5.2f} s")


if __name__ == "__main__":
    main()
