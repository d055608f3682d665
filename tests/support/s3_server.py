"""A real S3 server on 127.0.0.1 for tests and benchmarks: moto's standalone server in a subprocess.

The code under test reaches it through ``AWS_ENDPOINT_URL``, exactly as it reaches a user's S3; nothing is
patched in-process. Needs ``moto[server]`` (the ``test`` extra). The benchmarks in ``bench/`` use it too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
START_SECONDS = 30


@dataclass(frozen=True)
class LocalS3:
    endpoint: str
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def moto_server_command(port: int) -> list[str]:
    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable))
    if exe:
        return [exe, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + START_SECONDS
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if process.poll() is not None:
            raise RuntimeError("moto_server exited at start: is moto[server] installed?")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"moto_server did not start within {START_SECONDS} s")


@contextlib.contextmanager
def aws_environment(**values: str) -> Iterator[None]:
    """Set AWS_* variables (and any other given) for the block, restoring the previous values after it."""
    old = {k: os.environ.get(k) for k in (*AWS_VARIABLES, *values)}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def local_s3_server(*buckets: str) -> Iterator[LocalS3]:
    """Start moto's S3 server on a free port, point the AWS_* variables at it, create ``buckets``; stop it after."""
    port = free_port()
    process = subprocess.Popen(moto_server_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, process)
        with aws_environment(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing-key-id",
            AWS_SECRET_ACCESS_KEY="testing-secret-key",
            AWS_REGION="us-east-1",
        ):
            if buckets:
                import boto3

                client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
                for bucket in buckets:
                    client.create_bucket(Bucket=bucket)
            yield LocalS3(endpoint, process)
    finally:
        process.terminate()
        process.wait(timeout=10)
