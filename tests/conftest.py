"""Fixtures: storage roots (local disk, and a real S3 server on 127.0.0.1), executors.

The S3 server is moto's standalone server started as a subprocess; the code under test reaches it through
``AWS_ENDPOINT_URL`` exactly as it reaches a user's S3. Nothing is patched in-process. Helpers (snapshots,
configs, the CLI, reading a lake back) are in ``tests/support/``: only fixtures live here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path

import pytest

from dbsnaplake.api import make_executor

from .support.s3_server import local_s3_server
from .support.snapshots import S3_BUCKET


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 HTTP server (moto) on a free port of 127.0.0.1; yields its endpoint URL."""
    with local_s3_server(S3_BUCKET) as server:
        yield server.endpoint


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty root folder: on local disk, or a fresh prefix on the S3 server."""
    if request.param == "local":
        return str(tmp_path)
    request.getfixturevalue("s3_server")
    return f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def local_root(tmp_path: Path) -> str:
    return str(tmp_path)


@pytest.fixture(params=["inline", "process"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """Where group work runs: in this process, or in a pool of 2 spawned worker processes (shut down after)."""
    with make_executor(request.param, workers=2) as pool:
        yield pool
