"""What an operator meets around a run: machine-readable output, cleaning up the staging lake, and clear answers
from status and versions."""

from __future__ import annotations

import json
import re

from dbsnaplake import storage

from .support.cli import dbsnaplake, stage_options
from .support.snapshots import make_orders_snapshot


def document(stdout: str, command: str) -> dict[str, object]:
    data = json.loads(stdout)  # one JSON document, nothing else on stdout
    assert data["dbsnaplake_output"] == 1 and data["command"] == command, data
    assert isinstance(data, dict)
    return data


def staging_of(options: list[str]) -> str:
    return options[options.index("--staging") + 1]


def test_run_validate_publish_and_status_print_one_json_document(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=3, rows_per_file=400)
    options = stage_options(local_root, manifest)

    ran = dbsnaplake("run", *options, "--output", "json")
    assert ran.returncode == 0, ran.stderr
    run = document(ran.stdout, "run")
    [table] = run["tables"]  # type: ignore[misc]
    assert run["ok"] is True and table["validation"]["ok"] is True
    assert table["validation"]["datalake"]["records"] == 1_200 and table["published"]["n_record"] == 1_200
    assert table["snapshot"]["n_file"] == 3 and set(table["seconds"]) >= {"plan", "etl", "compact", "publish"}

    staging = staging_of(options)
    validated = document(dbsnaplake("validate", "--staging", staging, "--output", "json").stdout, "validate")
    assert validated["ok"] is True and validated["etl_records_in"] == 1_200
    published = document(dbsnaplake("publish", "--staging", staging, "--output", "json").stdout, "publish")
    assert published == {"dbsnaplake_output": 1, "command": "publish", "ok": True, "published": None}
    status = document(dbsnaplake("status", "--staging", staging, "--output", "json").stdout, "status")
    assert status["published"] is True and [s["stage"] for s in status["stages"]] == ["etl", "compact"]  # type: ignore[union-attr]


def test_an_error_with_json_output_is_a_json_document_too(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=1, rows_per_file=10)
    result = dbsnaplake("run", *stage_options(local_root, manifest), "--group-size", "12 parsecs", "--output", "json")
    assert result.returncode == 1
    failed = document(result.stdout, "run")
    assert failed["ok"] is False and failed["error"]["type"] == "ConfigError"  # type: ignore[index]
    assert "12 parsecs" in failed["error"]["message"]  # type: ignore[index]
    assert "12 parsecs" in result.stderr  # and the one-line message a person reads


def test_clean_removes_the_staging_lake_of_a_published_snapshot_only(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=3, rows_per_file=400)
    options = stage_options(local_root, manifest)
    staging = staging_of(options)
    staging_lake = storage.join(staging, "datalake")
    assert dbsnaplake("plan", *options).returncode == 0

    refused = dbsnaplake("clean", "--staging", staging)
    assert refused.returncode == 1 and "not published yet" in refused.stderr

    assert dbsnaplake("run", *options).returncode == 0
    assert storage.list_files(staging_lake)
    cleaned = dbsnaplake("clean", "--staging", staging)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed the staging lake" in cleaned.stdout
    assert not storage.list_files(staging_lake)
    status = dbsnaplake("status", "--staging", staging)
    assert status.returncode == 0 and "published : yes" in status.stdout
    rerun = dbsnaplake("run", *options)
    assert rerun.returncode == 0, rerun.stderr  # a rerun after cleaning finds everything done


def test_run_clean_staging_removes_it_after_publishing(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=300)
    options = stage_options(local_root, manifest)
    result = dbsnaplake("run", *options, "--clean-staging")
    assert result.returncode == 0, result.stderr
    assert "staging lake removed" in result.stderr
    assert not storage.list_files(storage.join(staging_of(options), "datalake"))


def test_status_of_a_folder_nobody_planned_in_is_an_error(local_root: str) -> None:
    result = dbsnaplake("status", "--staging", storage.join(local_root, "typo"))
    assert result.returncode == 1
    assert "no dbsnaplake run has planned there" in result.stderr


def test_versions_list_explains_a_historical_lake(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=300)
    options = stage_options(local_root, manifest)
    assert dbsnaplake("run", *options).returncode == 0
    datalake = options[options.index("--datalake") + 1]
    listed = dbsnaplake("versions", "list", "--datalake", datalake)
    assert listed.returncode == 0, listed.stderr
    assert "historical lake" in listed.stdout and "600 records" in listed.stdout
    empty = dbsnaplake("versions", "list", "--datalake", storage.join(local_root, "nothing-here"))
    assert empty.returncode == 0 and "nothing is published there yet" in empty.stdout


def test_dry_run_says_what_a_run_would_make_and_writes_nothing(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=500)
    options = stage_options(local_root, manifest)
    staging = staging_of(options)

    text = dbsnaplake("plan", *options, "--dry-run")
    assert text.returncode == 0, text.stderr
    assert "would plan" in text.stdout and "dry run: nothing was written" in text.stdout
    assert re.search(r"~\d+ partitions, ~\d+ staging files", text.stdout), text.stdout
    as_json = document(dbsnaplake("run", *options, "--dry-run", "--output", "json").stdout, "plan")
    assert as_json["dry_run"] is True and as_json["estimate"]["partitions_in_sample"] > 0  # type: ignore[index]
    assert not storage.list_files(staging) and not storage.exists(staging), "a dry run writes nothing"


def test_a_run_with_far_too_many_partitions_is_refused_before_writing(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=2, rows_per_file=300)
    options = [*stage_options(local_root, manifest), "--partition-by", "order_id", "--max-partitions", "100"]

    refused = dbsnaplake("run", *options)
    assert refused.returncode == 1
    assert "--partition-by order_id would make about" in refused.stderr and "--max-partitions" in refused.stderr
    datalake = options[options.index("--datalake") + 1]
    assert not storage.exists(datalake) and not storage.list_files(storage.join(staging_of(options), "manifests", "snapshot-file-groups"))
    allowed = dbsnaplake("plan", *options[:-2], "--max-partitions", "0", "--dry-run")
    assert allowed.returncode == 0, allowed.stderr
