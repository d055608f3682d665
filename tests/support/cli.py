"""The ``dbsnaplake`` command, run as a user runs it: the installed entry point in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dbsnaplake import storage

from .snapshots import YEAR_MONTH


def dbsnaplake(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("dbsnaplake")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "dbsnaplake.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, env=os.environ.copy(), timeout=600
    )


def stage_options(root: str, manifest: str) -> list[str]:
    return [
        "--manifest", manifest,
        "--staging", storage.join(root, "staging", "db", "orders", "snapshot=2024-01-01T00:00:00Z"),
        "--datalake", storage.join(root, "datalake", "db", "orders"),
        "--partition-by", "year,month",
        "--sort-by", "order_time",
        "--transform", YEAR_MONTH,
        "--target-file-size", "64KB",
        "--workers", "2",
    ]  # fmt: skip
