"""Credentials never reach an output: not stdout, not stderr, not any object the CLI writes to the store.

The CLI runs as a user runs it, against the S3 server with a distinctive secret key and session token, through a
proxy that records every request signature, in runs that succeed and runs that fail: a snapshot file missing,
S3 refusing a request with ``SignatureDoesNotMatch`` (whose answer echoes the signature and the canonical
request, session token included), a bucket that does not exist, an endpoint where no S3 listens.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from dbsnaplake import storage
from dbsnaplake.storage.s3 import scrub_secrets

from .support.cli import dbsnaplake, stage_options
from .support.fault_proxy import fault_proxy
from .support.s3_server import aws_environment, free_port
from .support.snapshots import S3_BUCKET, make_orders_snapshot

SECRET_KEY = f"dbsnaplakeSECRETkey{uuid.uuid4().hex}"
SESSION_TOKEN = f"dbsnaplakeSESSIONtoken{uuid.uuid4().hex}"
ALWAYS_FORBIDDEN = ("X-Amz-Signature", "Signature=", SECRET_KEY, SESSION_TOKEN)


@pytest.fixture
def root(s3_server: str) -> str:
    return f"s3://{S3_BUCKET}/secrets-{uuid.uuid4().hex[:10]}"


def staging_of(root: str) -> str:
    return storage.join(root, "staging", "db", "orders", "snapshot=2024-01-01T00:00:00Z")


class Outputs:
    """Every CLI output of a test, and every signature a client sent."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.signatures: set[str] = set()

    def run(self, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
        with aws_environment(
            AWS_ENDPOINT_URL=endpoint, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_SESSION_TOKEN=SESSION_TOKEN
        ):
            result = dbsnaplake(*args)
        self.texts += [(f"{args[0]} stdout", result.stdout), (f"{args[0]} stderr", result.stderr)]
        return result

    def assert_clean(self, root: str) -> None:
        """No forbidden string in any output, nor in any object below ``root`` (manifests, results, Parquet)."""
        forbidden = [*ALWAYS_FORBIDDEN, *self.signatures]
        storage.reset_clients()
        objects = storage.list_files(root)
        assert objects
        for name, text in self.texts:
            for secret in forbidden:
                assert secret not in text, f"{secret!r} in {name}:\n{text}"
        for info in objects:
            data = storage.read_bytes(info.uri)
            for secret in forbidden:
                assert secret.encode() not in data, f"{secret!r} in {info.uri}"


@pytest.fixture
def outputs() -> Outputs:
    return Outputs()


def test_a_run_that_succeeds(s3_server: str, root: str, outputs: Outputs) -> None:
    manifest = make_orders_snapshot(root, n_files=4, rows_per_file=500)
    with fault_proxy(s3_server) as proxy:
        result = outputs.run(proxy.endpoint, "run", *stage_options(root, manifest))
        assert result.returncode == 0, result.stderr
        outputs.run(proxy.endpoint, "status", "--staging", staging_of(root))
    outputs.signatures |= proxy.signatures
    assert len(proxy.signatures) > 10
    outputs.assert_clean(root)


def test_a_missing_snapshot_file(s3_server: str, root: str, outputs: Outputs) -> None:
    manifest = make_orders_snapshot(root, n_files=4, rows_per_file=500)
    storage.delete(storage.join(root, "snapshot", "part-0001.parquet"))
    with fault_proxy(s3_server) as proxy:
        result = outputs.run(proxy.endpoint, "run", *stage_options(root, manifest))
    outputs.signatures |= proxy.signatures
    assert result.returncode == 1
    assert "part-0001.parquet" in result.stderr
    outputs.assert_clean(root)


def test_s3_refusing_a_signature(s3_server: str, root: str, outputs: Outputs) -> None:
    """S3's SignatureDoesNotMatch answer echoes the signature and the canonical request (with the session token);
    the ETL worker's error goes to stderr, to the failed-group marker in the store, and to 'status'."""
    manifest = make_orders_snapshot(root, n_files=4, rows_per_file=500)
    snapshot_file = "GET /" + storage.join(root, "snapshot", "part-0002.parquet")[len("s3://") :]
    options = [*stage_options(root, manifest), "--inspect-files", "none", "--retries", "0"]
    with fault_proxy(s3_server, forbidden_rate=1.0, only_requests=snapshot_file) as proxy:
        result = outputs.run(proxy.endpoint, "run", *options)
        status = outputs.run(proxy.endpoint, "status", "--staging", staging_of(root))
    outputs.signatures |= proxy.signatures
    assert proxy.counts["forbidden_403"] > 0
    assert result.returncode == 1
    assert "SignatureDoesNotMatch" in result.stderr  # the error is there, its secrets are not
    assert "SignatureDoesNotMatch" in status.stdout
    markers = [i.uri for i in storage.list_files(staging_of(root)) if storage.base_name(i.uri).startswith("failed-")]
    assert markers
    outputs.assert_clean(root)


def test_a_bucket_that_does_not_exist(s3_server: str, root: str, outputs: Outputs) -> None:
    manifest = make_orders_snapshot(root, n_files=4, rows_per_file=500)
    options = stage_options(root, manifest)
    options[options.index("--datalake") + 1] = f"s3://dbsnaplake-no-such-bucket-{uuid.uuid4().hex[:8]}/lake/"
    with fault_proxy(s3_server) as proxy:
        result = outputs.run(proxy.endpoint, "run", *options, "--retries", "0")
    outputs.signatures |= proxy.signatures
    assert result.returncode == 1
    outputs.assert_clean(root)


def test_an_endpoint_where_no_s3_listens(s3_server: str, root: str, outputs: Outputs) -> None:
    manifest = make_orders_snapshot(root, n_files=2, rows_per_file=500)
    result = outputs.run(f"http://127.0.0.1:{free_port()}", "run", *stage_options(root, manifest))
    assert result.returncode == 1
    assert "127.0.0.1" in result.stderr
    outputs.assert_clean(root)


def test_scrub_secrets_keeps_the_error_and_drops_the_credentials() -> None:
    message = (
        "Error performing GET https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F20240101&X-Amz-Signature=abc123"
        "&X-Amz-Security-Token=tok - 403: <Code>SignatureDoesNotMatch</Code><SignatureProvided>abc123"
        "</SignatureProvided><CanonicalRequest>GET\n/k\n\nx-amz-security-token:tok\n</CanonicalRequest>\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/s3/aws4_request, Signature=abc123"
    )
    scrubbed = scrub_secrets(message)
    assert "abc123" not in scrubbed and "tok" not in scrubbed.replace("token", "")
    assert "Signature=" not in scrubbed and "X-Amz-Signature" not in scrubbed
    assert "SignatureDoesNotMatch" in scrubbed and "https://b.s3.amazonaws.com/k" in scrubbed
