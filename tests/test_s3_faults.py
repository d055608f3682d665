"""The pipeline on an unreliable S3: a proxy between the code and the S3 server answers 503 SlowDown and 500,
drops connections (before the request reaches S3, after S3 did the work, half-way through an answer) and stalls
answers past the client's timeout. Every call must retry its way through and leave the lake a clean run leaves.

The worker processes reach the proxy as they reach any S3: through ``AWS_ENDPOINT_URL``, inherited at spawn.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import boto3
import pytest

from dbsnaplake import storage
from dbsnaplake.api import make_executor, run_pipeline

from .support.fault_proxy import FaultProxy, fault_proxy
from .support.lake import expected_rows, lake_files, read_lake, same_rows
from .support.s3_server import aws_environment
from .support.snapshots import S3_BUCKET, make_orders_snapshot, orders_config

CLIENT_TIMEOUT = "1"  # second (DBSNAPLAKE_S3_TIMEOUT): a 1.5 s stall times the request out, and it is retried
STALL_SECONDS = 1.5


@contextlib.contextmanager
def through(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """Send this process's S3 requests (and those of workers started in the block) through ``proxy``."""
    with aws_environment(AWS_ENDPOINT_URL=proxy.endpoint, DBSNAPLAKE_S3_TIMEOUT=CLIENT_TIMEOUT):
        storage.reset_clients()  # clients are cached per bucket, with the endpoint they were made with
        try:
            yield proxy
        finally:
            storage.reset_clients()


def objects_below(prefix: str) -> dict[str, int]:
    """Every object below ``prefix`` (temporary ones too), by path relative to it."""
    root = storage.as_dir(prefix)
    return {i.uri[len(root) :]: i.size for i in storage.backend(root).list_files(root)}


def open_uploads(endpoint: str, prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    uploads = client.list_multipart_uploads(Bucket=S3_BUCKET, Prefix=prefix).get("Uploads", [])
    return [u["Key"] for u in uploads]


def run_through_faults(s3_server: str, n_files: int, rates: dict[str, float], seed: int) -> None:
    root = f"s3://{S3_BUCKET}/faults-{uuid.uuid4().hex[:10]}"
    manifest = make_orders_snapshot(storage.join(root, "source"), n_files=n_files, rows_per_file=2_000)
    clean = orders_config(storage.join(root, "clean"), manifest, group_size=60_000, target_file_size=40_000)
    run_pipeline(clean)
    # retries=0: a group that fails is not rerun by the pipeline, so every fault must be absorbed by the S3 calls
    faulty = orders_config(
        storage.join(root, "faulty"), manifest, group_size=60_000, target_file_size=40_000, retries=0
    )

    with fault_proxy(s3_server, stall_seconds=STALL_SECONDS, seed=seed, **rates) as proxy, through(proxy):
        with make_executor("process", 2) as pool:
            result = run_pipeline(faulty, pool)
        assert result.validation.ok

    counts = dict(proxy.counts)
    assert proxy.injected() >= 20, counts
    for kind in ("slowdown_503", "internal_500", "reset_before", "reset_after", "reset_mid_body", "stall"):
        assert counts.get(kind, 0) > 0, f"no {kind} injected: {counts}"

    same_rows(read_lake(faulty), read_lake(clean), key="order_id")
    same_rows(read_lake(faulty), expected_rows(faulty), key="order_id")
    assert len(lake_files(faulty)) == len(lake_files(clean))
    for folder in ("staging", "datalake"):  # same files by name (so no duplicate), none left over
        names = objects_below(storage.join(root, "faulty", folder))
        clean_names = objects_below(storage.join(root, "clean", folder))
        assert sorted(names) == sorted(clean_names)
        assert not [n for n in names if n.endswith(storage.TEMP_SUFFIX)]
    assert open_uploads(s3_server, root.split("/", 3)[3]) == []


def test_pipeline_survives_throttling_resets_and_stalls(s3_server: str) -> None:
    rates = {"error_rate": 0.06, "reset_rate": 0.04, "stall_rate": 0.01}
    run_through_faults(s3_server, n_files=8, rates=rates, seed=11)


@pytest.mark.slow
def test_pipeline_survives_a_bad_day_on_s3(s3_server: str) -> None:
    rates = {"error_rate": 0.10, "reset_rate": 0.08, "stall_rate": 0.015}
    run_through_faults(s3_server, n_files=24, rates=rates, seed=5)


# ---- each storage call on its own, at a high fault rate ---------------------------------------------------

HEAVY = {"error_rate": 0.15, "reset_rate": 0.15, "stall_rate": 0.03}


@pytest.fixture
def prefix(s3_server: str) -> str:
    return f"s3://{S3_BUCKET}/calls-{uuid.uuid4().hex[:10]}"


def test_reads_retry(s3_server: str, prefix: str) -> None:
    data = os.urandom(300_000)
    uri = storage.join(prefix, "object.bin")
    storage.write_bytes(uri, data)
    with fault_proxy(s3_server, stall_seconds=STALL_SECONDS, seed=1, **HEAVY) as proxy, through(proxy):
        for _ in range(10):
            assert storage.read_bytes(uri) == data
            assert storage.read_range(uri, 1_000, 100_000) == data[1_000:101_000]
            assert storage.head(uri).size == len(data)
            assert [i.uri for i in storage.list_files(prefix)] == [uri]
            with storage.open_input_file(uri, len(data)) as f:  # the ranged reader pyarrow reads footers with
                f.seek(-50_000, os.SEEK_END)
                assert f.read() == data[-50_000:]
    assert proxy.injected() >= 10, dict(proxy.counts)


def test_writes_and_deletes_retry(s3_server: str, prefix: str) -> None:
    data = os.urandom(200_000)
    uris = [storage.join(prefix, f"object-{n}.bin") for n in range(30)]
    with fault_proxy(s3_server, stall_seconds=STALL_SECONDS, seed=2, **HEAVY) as proxy, through(proxy):
        for uri in uris:
            storage.write_bytes(uri, data)
        assert storage.delete_folder(storage.join(prefix, "none-here")) == 0
        for uri in uris[:10]:
            storage.delete(uri)
            storage.delete(uri)  # deleting what is gone is fine
    assert sorted(objects_below(prefix)) == sorted(storage.base_name(u) for u in uris[10:])
    assert all(storage.read_bytes(u) == data for u in uris[10:])
    assert proxy.injected() >= 10, dict(proxy.counts)


@pytest.mark.slow
def test_multipart_upload_retries_as_a_whole(s3_server: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files from MULTIPART_FROM (here 16 MiB) go up in parts; obstore does not retry a dropped CreateMultipartUpload
    or CompleteMultipartUpload (a lost answer to one that succeeded then fails as NoSuchUpload): storage re-uploads."""
    monkeypatch.setattr("dbsnaplake.storage.s3.MULTIPART_FROM", 16 * 1024 * 1024)
    data = os.urandom(17 * 1024 * 1024 + 5)
    uris = [storage.join(prefix, f"big-{n}.bin") for n in range(6)]
    with fault_proxy(s3_server, reset_rate=0.3, seed=4) as proxy, through(proxy):
        for uri in uris:
            storage.write_bytes(uri, data)
    assert proxy.counts["reset_after"] + proxy.counts["reset_before"] >= 5, dict(proxy.counts)
    assert all(storage.read_bytes(u) == data for u in uris)


def test_files_read_in_order_survive_responses_broken_off_midway(s3_server: str, prefix: str) -> None:
    """A file read through is one streamed GET: connections reset before the answer, after it, or halfway through
    its body (and 503s) are absorbed (obstore resumes a cut body itself; what it gives up on, the reader asks for
    again: see test_storage_read_ahead)."""
    objects = {storage.join(prefix, f"stream-{n}.bin"): os.urandom(3 * 1024 * 1024 + n) for n in range(16)}
    for uri, data in objects.items():
        storage.write_bytes(uri, data)
    faults = fault_proxy(s3_server, reset_rate=0.5, error_rate=0.1, only_requests="GET ", seed=5)
    with faults as proxy, through(proxy):
        for uri, data in objects.items():
            with storage.open_input_file(uri, len(data), 256 * 1024, streamed=True) as f:
                assert b"".join(iter(lambda f=f: f.read(100_000), b"")) == data
    assert proxy.counts["reset_mid_body"] >= 2, dict(proxy.counts)


def test_conditional_writes_retry(s3_server: str, prefix: str) -> None:
    with fault_proxy(s3_server, reset_rate=0.5, only_requests="PUT ", seed=3) as proxy, through(proxy):
        for n in range(10):
            storage.put_if_absent(storage.join(prefix, f"lock-{n}.json"), b"{}")  # retried, not raised
    assert proxy.counts["reset_before"] + proxy.counts["reset_after"] > 0
    for n in range(10):  # each was created exactly once: a second create-if-absent is refused
        assert storage.read_bytes(storage.join(prefix, f"lock-{n}.json")) == b"{}"
        assert storage.put_if_absent(storage.join(prefix, f"lock-{n}.json"), b"other") is False
