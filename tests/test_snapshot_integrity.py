"""Snapshot-side integrity, from the user's side: a manifest listing a file twice is refused at plan, quoted ETags
(as boto3 gives them) are the same ETags, and a file rewritten after the manifest was written (on local disk:
even with the same size) is refused when ETL reads it, also when planning took its footer from the manifest.
Nothing reaches the data lake."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbsnaplake import storage
from dbsnaplake.api import read_manifest, write_manifest
from dbsnaplake.frames.readers import ParquetFooter
from dbsnaplake.frames.schema import decode_schema
from dbsnaplake.manifest import ETAG, FILES_SCHEMA, PARQUET_SCHEMA, UNCOMPRESSED_SIZE, URI
from dbsnaplake.records import PlanResult

from .support.cli import dbsnaplake, stage_options
from .support.snapshots import make_orders_snapshot, orders_config


def error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]  # after progress bars
    assert len(errors) == 1, stderr
    return " ".join(errors[0].split())


def datalake(root: str) -> str:
    return storage.join(root, "datalake", "db", "orders")


def rewrite_manifest(manifest_uri: str, change: str) -> list[str]:
    """Rewrite the snapshot manifest: ``duplicate`` its first file, ``quote`` or ``drop`` its ETags."""
    manifest = read_manifest(manifest_uri)
    files = manifest.files
    if change == "duplicate":
        files = pa.concat_tables([files, files.slice(0, 1)])
    else:
        etags = files[ETAG].to_pylist()
        assert all(etags), "the manifest records every file's ETag"
        quoted = [f'"{etag}"' for etag in etags] if change == "quote" else [None] * len(etags)
        files = files.set_column(files.column_names.index(ETAG), ETAG, pa.array(quoted, pa.string()))
    write_manifest(manifest_uri, files, manifest.details, manifest.data_uri)
    return list(files[URI].to_pylist())


def rewrite_in_place_with_the_same_size(uri: str) -> None:
    """One bit of the file's middle flipped; the modification time (on S3: the ETag) moves on, the size stays."""
    data = bytearray(storage.read_bytes(uri))
    data[len(data) // 2] ^= 1
    if storage.is_s3(uri):
        storage.write_bytes(uri, bytes(data))
        return
    before = os.stat(uri)
    with open(uri, "r+b") as f:
        f.write(data)
    os.utime(uri, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert os.stat(uri).st_size == before.st_size


def test_a_manifest_listing_a_file_twice_is_refused_at_plan(local_root: str) -> None:
    manifest = make_orders_snapshot(local_root, n_files=3, rows_per_file=200)
    uris = rewrite_manifest(manifest, "duplicate")
    result = dbsnaplake("run", *stage_options(local_root, manifest))
    assert result.returncode == 1
    message = error_line(result.stderr)
    for needle in ("more than once", uris[0], "twice", "fix the manifest", "dbsnaplake manifest build"):
        assert needle in message, message
    assert not storage.list_files(datalake(local_root))


def test_quoted_etags_in_a_manifest_are_the_store_s_etags(root: str) -> None:
    manifest = make_orders_snapshot(root, n_files=3, rows_per_file=200)
    rewrite_manifest(manifest, "quote")
    result = dbsnaplake("run", *stage_options(root, manifest))
    assert result.returncode == 0, result.stderr
    assert any(i.uri.endswith("_SUCCESS") for i in storage.list_files(datalake(root)))  # validated and published


def test_a_file_rewritten_with_the_same_size_after_the_manifest_is_refused_by_etl(root: str) -> None:
    """On S3 the ETag that comes with the file's bytes (one GET, no HEAD) is the one checked."""
    manifest = make_orders_snapshot(root, n_files=3, rows_per_file=200)
    changed = read_manifest(manifest).column(URI)[1]
    rewrite_in_place_with_the_same_size(changed)
    result = dbsnaplake("run", *stage_options(root, manifest))
    assert result.returncode == 1
    message = error_line(result.stderr)
    for needle in (changed, "changed after the manifest was written", "rebuild the manifest", "--fresh"):
        assert needle in message, message
    assert not storage.list_files(datalake(root))


def test_planning_records_what_a_manifest_without_etags_lacks(local_root: str) -> None:
    """An older manifest has no ETags: planning records each file's, so a file rewritten after planning is refused."""
    manifest = make_orders_snapshot(local_root, n_files=3, rows_per_file=200)
    uris = rewrite_manifest(manifest, "drop")
    options = stage_options(local_root, manifest)
    planned = dbsnaplake("plan", *options, "--output", "json")
    assert planned.returncode == 0, planned.stderr
    groups = json.loads(planned.stdout)
    rewrite_in_place_with_the_same_size(uris[0])
    results = [dbsnaplake("etl", "--group-manifest", group) for group in groups]
    refused = [error_line(r.stderr) for r in results if r.returncode != 0]
    assert len(refused) == 1
    assert uris[0] in refused[0] and "changed after the manifest was written" in refused[0]
    assert not storage.list_files(datalake(local_root))


def plan_reading_footers(
    root: str, manifest: str, monkeypatch: pytest.MonkeyPatch, inspect_files: str = "auto"
) -> tuple[PlanResult, list[str]]:
    """Plan the orders snapshot in this process; returns the plan and the files whose footers planning read."""
    import dbsnaplake.stages.plan as planning

    read: list[str] = []
    real = planning.read_parquet_footer

    def counted(uri: str, size: int | None = None) -> ParquetFooter:
        read.append(uri)
        return real(uri, size)

    monkeypatch.setattr(planning, "read_parquet_footer", counted)
    config = orders_config(root, manifest, inspect_files=inspect_files)
    return planning.plan(config), read


def test_planning_takes_the_footers_a_built_manifest_recorded(local_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest dbsnaplake built holds what each file's footer said: planning reads none again, unless told to
    (``--inspect-files all``) or the manifest does not hold them (another tool's), and plans the same either way."""
    manifest = make_orders_snapshot(local_root, n_files=4, rows_per_file=300)
    files = read_manifest(manifest).files
    uris = files[URI].to_pylist()
    recorded = files[PARQUET_SCHEMA].to_pylist()
    assert [decode_schema(text) for text in recorded] == [pq.read_schema(uri) for uri in uris]
    assert files[UNCOMPRESSED_SIZE].to_pylist() == [
        sum(pq.read_metadata(uri).row_group(i).total_byte_size for i in range(pq.read_metadata(uri).num_row_groups))
        for uri in uris
    ]

    taken, read = plan_reading_footers(local_root, manifest, monkeypatch)
    assert read == []
    again, read = plan_reading_footers(local_root, manifest, monkeypatch, inspect_files="all")
    assert sorted(read) == sorted(uris)
    write_manifest(manifest, files.select(FILES_SCHEMA.names))  # as another tool lists them: no footers
    inspected, read = plan_reading_footers(local_root, manifest, monkeypatch)
    assert sorted(read) == sorted(uris)
    for plan in (again, inspected):
        assert (plan.schema, plan.lake_schema, plan.stats, plan.group_size) == (
            taken.schema, taken.lake_schema, taken.stats, taken.group_size,
        )  # fmt: skip


def test_a_file_cut_short_after_a_built_manifest_is_refused_by_etl(root: str) -> None:
    """The plan trusts the footer the manifest recorded; the ETL stage finds the file is not the one listed."""
    manifest = make_orders_snapshot(root, n_files=3, rows_per_file=200)
    changed = read_manifest(manifest).column(URI)[2]
    data = storage.read_bytes(changed)
    storage.write_bytes(changed, data[: len(data) // 2])
    result = dbsnaplake("run", *stage_options(root, manifest))
    assert result.returncode == 1
    message = error_line(result.stderr)
    for needle in (changed, "changed after the manifest was written", "rebuild the manifest"):
        assert needle in message, message
    assert not storage.list_files(datalake(root))
