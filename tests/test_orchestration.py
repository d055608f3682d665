"""An external orchestrator (Step Functions, Kubernetes Jobs) driving the per-group commands as separate processes.

It runs the groups in a random order, some of them twice and some twice at the same time, as a retrying
orchestrator does; the data lake it gets must be the one ``dbsnaplake run`` writes, file for file.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig, read_manifest
from dbsnaplake.records import PartitionFileGroup

from .support.cli import dbsnaplake, stage_options
from .support.lake import expected_rows, read_file, read_lake, same_rows
from .support.snapshots import make_orders_snapshot, orders_config

TARGET_FILE_SIZE = 16 * 1024
GROUP_SIZE = 200 * 1024  # one 8 x 3,000-row snapshot file (~128 KB) per ETL group
SETTINGS = ["--partition-by", "year", "--target-file-size", "16KB", "--group-size", "200KB"]
GROUP_NUMBER = re.compile(r"manifest-summary-(\d+)\.json$")


def lake_config(root: str, manifest: str) -> PipelineConfig:
    """The config that ``stage_options(root, manifest) + SETTINGS`` describe, to read the lake back."""
    return orders_config(
        root, manifest, partition_by=("year",), target_file_size=TARGET_FILE_SIZE, group_size=GROUP_SIZE
    )


def start(*args: str) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("dbsnaplake")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "dbsnaplake.cli"]
    return subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def schedule(groups: list[str], rng: random.Random, again: int = 2, at_once: int = 2) -> list[list[str]]:
    """Steps of an orchestrator, in a random order: every group once, ``again`` groups a second time on their own,
    ``at_once`` groups as two processes started together. Each step is the groups started at the same time."""
    steps = [[g] for g in groups]
    steps += [[g] for g in rng.sample(groups, again)]
    steps += [[g, g] for g in rng.sample(groups, at_once)]
    rng.shuffle(steps)
    return steps


def run_groups(command: str, options: list[str], groups: list[str], rng: random.Random) -> dict[str, list[Any]]:
    """Run ``dbsnaplake <command> --group-manifest`` per the :func:`schedule`; every run's JSON result, by group."""
    results: dict[str, list[Any]] = {g: [] for g in groups}
    for step in schedule(groups, rng):
        processes = [start(command, *options, "--group-manifest", group) for group in step]
        for group, process in zip(step, processes, strict=True):
            stdout, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, f"{command} {group} exited {process.returncode}: {stderr}"
            results[group].append(json.loads(stdout))
    return results


def check_results(results: dict[str, list[Any]]) -> None:
    """Each group reports its own number, and every run of a group reports the same result. Each run also says
    when it ran and on which worker (``timing``, for the run report): that is not an output, so it is left out of
    the comparison."""
    for group, runs in results.items():
        match = GROUP_NUMBER.search(group)
        assert match, f"{group} is not a group manifest summary"
        assert all(r["group"] == int(match.group(1)) for r in runs), runs
        assert all(r["timing"]["finished_at"] >= r["timing"]["started_at"] for r in runs), runs
        outputs = [{k: v for k, v in r.items() if k != "timing"} for r in runs]
        assert all(o == outputs[0] for o in outputs), f"the runs of {group} disagree: {runs}"


def lake_listing(config: PipelineConfig) -> list[str]:
    """Every object below the data lake, relative to it: temporary files included (``storage.list_files`` hides
    them, so this asks the backend directly)."""
    root = config.location.s3dir_datalake
    return sorted(info.uri[len(root) :] for info in storage.backend(root).list_files(root))


def orchestrate(options: list[str], staging: str, rng: random.Random) -> None:
    """plan → etl per group → plan-compaction → compact per group → publish (validates first), each a separate
    process. Only ``plan`` gets the settings; every other command gets a group manifest URI or the staging folder."""
    planned = dbsnaplake("plan", *options, "--output", "json")
    assert planned.returncode == 0, planned.stderr
    groups = json.loads(planned.stdout)
    assert len(groups) >= 4, groups
    check_results(run_groups("etl", [], groups, rng))

    packed = dbsnaplake("plan-compaction", "--staging", staging, "--output", "json")
    assert packed.returncode == 0, packed.stderr
    groups = json.loads(packed.stdout)
    assert len(groups) >= 4, groups
    assert any(read_manifest(g).header(PartitionFileGroup).groups_in_partition > 1 for g in groups), "no partition is split"
    check_results(run_groups("compact", [], groups, rng))

    validated = dbsnaplake("validate", "--staging", staging)
    assert validated.returncode == 0, validated.stderr
    assert "24,000 records" in validated.stdout
    published = dbsnaplake("publish", "--staging", staging)
    assert published.returncode == 0, published.stderr
    assert "24,000 records committed" in published.stdout


@pytest.mark.slow
def test_groups_run_in_any_order_twice_and_at_once_give_the_lake_of_run(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=8, rows_per_file=3_000)
    reference_root, orchestrated_root = storage.join(root, "reference"), storage.join(root, "orchestrated")
    ran = dbsnaplake("run", *stage_options(reference_root, manifest), *SETTINGS)
    assert ran.returncode == 0, ran.stderr

    staging = lake_config(orchestrated_root, manifest).location.s3dir_staging
    orchestrate([*stage_options(orchestrated_root, manifest), *SETTINGS], staging, random.Random(20240101))

    reference, orchestrated = lake_config(reference_root, manifest), lake_config(orchestrated_root, manifest)
    names = lake_listing(orchestrated)
    leftovers = [n for n in names if n.rsplit("/", 1)[-1].startswith(".") or n.endswith((".tmp", storage.TEMP_SUFFIX))]
    assert not leftovers, f"temporary files left in the data lake: {leftovers}"
    assert names == lake_listing(reference)
    for name in (n for n in names if n.endswith(".parquet")):  # _SUCCESS differs: its publishing time
        expected = read_file(reference.location.s3dir_datalake + name)
        assert read_file(orchestrated.location.s3dir_datalake + name).equals(expected), f"{name} differs"
    same_rows(read_lake(orchestrated), expected_rows(orchestrated), key="order_id")
