"""Stage commands read their settings from the plan: an orchestrator passes a group manifest URI (or the staging
folder) and nothing else, and an option that contradicts the plan is refused."""

from __future__ import annotations

import json

import pytest

from dbsnaplake import storage
from dbsnaplake.api import Ledger, PipelineConfig, S3Location, SortKey

from .support.cli import dbsnaplake
from .support.lake import lake_files, read_file, read_lake
from .support.snapshots import make_orders_snapshot

PLAN_OPTIONS = ["--partition-by", "city", "--sort-by", "order_time:desc", "--target-file-size", "32KB"]


def roots(root: str) -> tuple[str, str]:
    return (
        storage.join(root, "staging", "db", "orders", "snapshot=2024-01-01T00:00:00Z"),
        storage.join(root, "datalake", "db", "orders"),
    )


def lake_config(root: str, manifest: str) -> PipelineConfig:
    staging, datalake = roots(root)
    return PipelineConfig(
        location=S3Location(staging, datalake),
        snapshot_manifest=manifest,
        partition_by=("city",),
        sort_by=(SortKey("order_time", descending=True),),
    )


def planned(root: str, manifest: str) -> list[str]:
    staging, datalake = roots(root)
    result = dbsnaplake("plan", "--manifest", manifest, "--staging", staging, "--datalake", datalake,
                        "--group-size", "20KB", *PLAN_OPTIONS, "--output", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    groups: list[str] = json.loads(result.stdout)
    assert len(groups) >= 2
    return groups


def ok(*args: str) -> str:
    result = dbsnaplake(*args)
    assert result.returncode == 0, f"dbsnaplake {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_plan_with_options_then_stages_with_only_uris_build_the_lake_of_run(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=500)
    reference = storage.join(local_root, "reference")
    staging, datalake = roots(reference)
    ok("run", "--manifest", manifest, "--staging", staging, "--datalake", datalake, "--group-size", "20KB",
       *PLAN_OPTIONS)  # fmt: skip

    orchestrated = storage.join(local_root, "orchestrated")
    staging, _ = roots(orchestrated)
    for group in planned(orchestrated, manifest):
        ok("etl", "--group-manifest", group)
    compaction_groups = json.loads(ok("plan-compaction", "--staging", staging, "--output", "json"))
    for group in compaction_groups:
        ok("compact", "--group-manifest", group)
    assert "2,000 records committed" in ok("publish", "--staging", staging)

    ours, theirs = lake_config(orchestrated, manifest), lake_config(reference, manifest)
    names = sorted(uri[len(ours.location.s3dir_datalake) :] for uri in lake_files(ours))
    assert names == sorted(uri[len(theirs.location.s3dir_datalake) :] for uri in lake_files(theirs))
    assert all(name.startswith("city=") for name in names)
    for name in names:
        assert read_file(ours.location.s3dir_datalake + name).equals(read_file(theirs.location.s3dir_datalake + name))
    assert read_lake(ours).height == 2_000


def test_an_option_that_contradicts_the_plan_is_refused(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=300)
    groups = planned(local_root, manifest)
    staging, datalake = roots(local_root)

    refused = dbsnaplake("etl", "--group-manifest", groups[0], "--partition-by", "status")
    assert refused.returncode == 1
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "--partition-by status contradicts the plan" in message and "--partition-by city" in message
    assert "--fresh" in message
    assert not Ledger(S3Location(staging, datalake)).done_groups("etl"), "a refused command must not write"

    refused = dbsnaplake("etl", "--group-manifest", groups[0], "--datalake", storage.join(local_root, "elsewhere"))
    assert refused.returncode == 1 and "--datalake" in refused.stderr and "contradicts the plan" in refused.stderr

    agreeing = dbsnaplake("etl", "--group-manifest", groups[0], "--partition-by", "city", "--workers", "1")
    assert agreeing.returncode == 0, agreeing.stderr  # the plan's value, and a setting that only changes speed


def test_a_manifest_of_the_wrong_kind_is_a_one_line_error(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=300)
    groups = planned(local_root, manifest)

    wrong_kind = dbsnaplake("compact", "--group-manifest", groups[0])
    assert wrong_kind.returncode == 1
    message = wrong_kind.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert groups[0] in message and "snapshot-file-group" in message and "partition-file-group" in message

    not_a_group = dbsnaplake("etl", "--group-manifest", manifest)
    assert not_a_group.returncode == 1
    assert len(not_a_group.stderr.strip().splitlines()) == 1, not_a_group.stderr
    assert "is not a snapshot-file-group manifest" in not_a_group.stderr


def test_stage_commands_without_a_plan_say_what_to_run_first(local_root: str) -> None:
    staging, _ = roots(local_root)
    result = dbsnaplake("plan-compaction", "--staging", staging)
    assert result.returncode == 1
    assert "no complete plan" in result.stderr and "dbsnaplake plan" in result.stderr
