"""The README's examples, run as written: its CLI commands and its Python API script, against a local S3 server
holding an export at the paths the README uses."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbsnaplake import storage

from .support.cli import dbsnaplake
from .support.s3_server import local_s3_server
from .support.snapshots import make_orders_snapshot

README = Path(__file__).resolve().parent.parent / "README.md"
EXPORT = "s3://bucket/exports/orders/"


def block_after(heading: str, language: str) -> str:
    """The first fenced block of ``language`` after ``heading`` in the README."""
    text = README.read_text()
    start = text.index(heading)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match, f"no {language} block after {heading!r}"
    return match.group(1)


def commands(block: str) -> list[list[str]]:
    """The shell commands of a block: continuation lines joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture
def export_on_s3(tmp_path: Path) -> Iterator[None]:
    """A local S3 server with the bucket the README uses, and an orders export where the README reads it."""
    with local_s3_server("bucket"):
        storage.reset_clients()
        folder = make_orders_snapshot(str(tmp_path), n_files=4, rows_per_file=500).rsplit("/manifests/", 1)[0]
        for info in storage.list_files(storage.join(folder, "snapshot")):
            storage.write_bytes(storage.join(EXPORT, storage.base_name(info.uri)), storage.read_bytes(info.uri))
        yield
        storage.reset_clients()


@pytest.mark.slow
@pytest.mark.usefixtures("export_on_s3")
def test_the_cli_examples_run_as_written() -> None:
    for command in commands(block_after("## CLI", "bash")):
        assert command[0] == "dbsnaplake", command
        result = dbsnaplake(*command[1:])
        assert result.returncode == 0, f"{shlex.join(command)}: {result.stderr}"
    status = json.loads(result.stdout)
    assert status["published"] is True and status["validated"] is True


@pytest.mark.slow
@pytest.mark.usefixtures("export_on_s3")
def test_the_python_api_example_runs_as_a_script(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block_after("## Python API", "python"))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=os.environ.copy(), timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "validation: OK" in result.stdout and "2,000 records committed" in result.stdout
