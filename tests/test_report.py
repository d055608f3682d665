"""The run report (``STAGING/manifests/report.html``), as an operator meets it: ``dbsnaplake run`` writes it (also
when validation fails), ``dbsnaplake report --staging`` rebuilds it, and it opens offline in a browser (headless
Chromium here) with every plot, no console error and no request to anywhere else."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from dbsnaplake import storage
from dbsnaplake.api import Ledger, PipelineConfig, run_pipeline
from dbsnaplake.layout import S3Location
from dbsnaplake.ledger import COMPACT, ETL
from dbsnaplake.records import GroupTiming

from .support.browser import render
from .support.cli import dbsnaplake, stage_options
from .support.snapshots import make_orders_snapshot, orders_config, write_parquet

PLOTS = {
    "file-sizes": "file size (log scale)",
    "partitions": "records per partition",
    "stage-times": "time per stage",
    "workers": "groups per worker over time",
    "validation": "validation per partition",
}
"""Each section of the report, and a title its plot holds."""
REMOTE_URL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""", re.I)


@dataclass(frozen=True)
class Ran:
    root: Path
    staging: str
    stdout: str

    @property
    def report(self) -> Path:
        return Path(S3Location(self.staging, self.staging).s3path_report)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """``dbsnaplake run`` over a small orders snapshot on two worker processes, once for the module's tests."""
    root = tmp_path_factory.mktemp("report")
    options = stage_options(str(root), make_orders_snapshot(str(root)))
    result = dbsnaplake("run", *options)
    assert result.returncode == 0, result.stderr
    return Ran(root, options[options.index("--staging") + 1], result.stdout)


def staging_of(config: PipelineConfig) -> str:
    return config.location.s3dir_staging


def test_run_writes_the_report_and_says_where(ran: Ran) -> None:
    assert f"report    : {ran.report}" in ran.stdout.splitlines()
    page = ran.report.read_text()
    for section, title in PLOTS.items():
        body = page.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
        assert "<svg" in body and title in body, f"the {section} section has no plot"
    assert not REMOTE_URL.search(page), REMOTE_URL.search(page)


@pytest.mark.slow
def test_the_report_renders_offline_in_headless_chromium(ran: Ran, tmp_path: Path) -> None:
    shown = render(ran.report, tmp_path / "report.png")
    assert shown.console_errors == []
    assert shown.remote_requests == []
    assert shown.requests == [ran.report.resolve().as_uri()], "the page loads nothing but itself"
    for title in PLOTS.values():
        assert title in shown.text, f"{title!r} is not on the rendered page"
    assert "Validation: OK" in shown.text
    png = shown.screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 100_000, "the screenshot is (nearly) blank"


@pytest.mark.slow
def test_the_browser_check_sees_console_errors_and_remote_requests(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="https://example.com/x.png">'
        '<script>console.error("broken plot")</script></body></html>'
    )
    shown = render(page, tmp_path / "bad.png")
    assert "broken plot" in shown.console_errors
    assert shown.remote_requests == ["https://example.com/x.png"]
    assert REMOTE_URL.search(page.read_text())


def test_each_group_says_when_and_on_which_worker_it_ran(ran: Ran) -> None:
    """The done-markers hold each group's timing; the run's stage seconds are stored; the Gantt names the workers."""
    ledger = Ledger.of_staging(ran.staging)
    times = ledger.read_run_times()
    assert times is not None
    assert list(times.seconds) == ["plan", "etl", "plan-compaction", "compact", "validate", "publish"]
    timings: list[GroupTiming] = [
        r.timing for stage in (ETL, COMPACT) for r in ledger.read_done(stage).values() if r.timing is not None
    ]
    assert len(timings) == len(ledger.read_done(ETL)) + len(ledger.read_done(COMPACT)), "a group has no timing"
    for timing in timings:
        assert times.started_at <= timing.started_at <= timing.finished_at <= times.finished_at
        assert timing.host == socket.gethostname()
    page = ran.report.read_text()
    for worker in {t.worker for t in timings}:
        assert worker in page, f"the report does not show worker {worker}"


def test_report_command_rebuilds_the_report(root: str) -> None:
    config = orders_config(root, make_orders_snapshot(root, n_files=4))
    run_pipeline(config)  # the library runs the stages: no report yet
    report = config.location.s3path_report
    assert not storage.exists(report)
    result = dbsnaplake("report", "--staging", staging_of(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == report
    page = storage.read_bytes(report).decode()
    assert all(f'<section id="{section}">' in page for section in PLOTS)
    assert "no &#x27;dbsnaplake run&#x27; finished here" not in page, "the library's run stores its stage times too"


def test_report_of_a_staging_area_without_a_plan_is_a_one_line_error(tmp_path: Path) -> None:
    result = dbsnaplake("report", "--staging", str(tmp_path / "nothing-here"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no complete plan" in lines[0] and "dbsnaplake plan" in lines[0], result.stderr


@pytest.mark.slow
def test_a_run_whose_validation_fails_still_writes_the_report(tmp_path: Path) -> None:
    root = str(tmp_path)
    options = stage_options(root, make_orders_snapshot(root, n_files=4))
    assert dbsnaplake("run", *options).returncode == 0
    staging = options[options.index("--staging") + 1]
    version_root = Ledger.of_staging(staging).require_plan().version_root
    storage.delete(storage.join(version_root, "_SUCCESS"))  # not published yet, as if the run had stopped there
    stray = storage.join(version_root, "year=1999", "month=01", "part-00000-00000.parquet")
    write_parquet(stray, pa.table({"order_id": [1, 2, 3]}))
    result = dbsnaplake("run", *options)
    assert result.returncode == 1
    assert "does not match the snapshot" in result.stderr
    report = Path(S3Location(staging, staging).s3path_report)
    assert f"report    : {report}" in result.stdout.splitlines()
    page = report.read_text()
    assert "validation per partition: FAILED" in page
    assert "year=1999/month=01" in page.split('<section id="validation">', 1)[1], "the stray partition is not named"
