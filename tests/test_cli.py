"""The ``dbsnaplake`` command, run as a user runs it: the installed entry point in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbsnaplake import storage

from .support.cli import dbsnaplake, stage_options
from .support.snapshots import make_orders_snapshot


def test_help_shows_an_example_for_every_command() -> None:
    for command in ("run", "plan", "etl", "plan-compaction", "compact", "validate", "demo"):
        result = dbsnaplake(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Example" in result.stdout


def test_run_prints_a_summary(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=1_000)
    result = dbsnaplake("run", *stage_options(local_root, manifest))
    assert result.returncode == 0, result.stderr
    assert "4,000 records" in result.stdout
    assert "validation: OK" in result.stdout


@pytest.mark.slow
def test_each_stage_on_its_own_like_an_external_orchestrator(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=6, rows_per_file=1_000)
    options = [*stage_options(root, manifest), "--group-size", "150KB"]

    planned = dbsnaplake("plan", *options, "--output", "json")
    assert planned.returncode == 0, planned.stderr
    groups = json.loads(planned.stdout)
    assert len(groups) > 1
    for group in reversed(groups):
        done = dbsnaplake("etl", *options, "--group-manifest", group)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["n_record_in"] > 0

    packed = dbsnaplake("plan-compaction", *options, "--output", "json")
    assert packed.returncode == 0, packed.stderr
    for group in json.loads(packed.stdout):
        done = dbsnaplake("compact", *options, "--group-manifest", group)
        assert done.returncode == 0, done.stderr

    validated = dbsnaplake("validate", *options)
    assert validated.returncode == 0, validated.stderr
    assert "6,000 records" in validated.stdout


def test_plan_compaction_before_etl_names_the_missing_groups(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=500)
    options = stage_options(local_root, manifest)
    assert dbsnaplake("plan", *options).returncode == 0
    result = dbsnaplake("plan-compaction", *options)
    assert result.returncode == 1
    assert "ETL has not finished" in result.stderr and "dbsnaplake etl --group-manifest" in result.stderr


def test_manifest_build_reads_footers(local_root: str) -> None:
    make_orders_snapshot(local_root, n_files=3, rows_per_file=700)
    out = storage.join(local_root, "m", "manifest-summary.json")
    result = dbsnaplake("manifest", "build", storage.join(local_root, "snapshot"), "--out", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads(Path(out).read_text())
    assert summary["n_record"] == 2_100
    assert summary["manifest"].endswith("manifest-data.parquet")


def test_bad_size_is_a_clear_error(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=1, rows_per_file=10)
    result = dbsnaplake("run", *stage_options(local_root, manifest), "--group-size", "12 parsecs")
    assert result.returncode != 0
    assert "12 parsecs" in result.stderr
