"""The run report (``STAGING/manifests/report.html``), as an operator meets it: ``dbsnaplake run`` writes it (also
when validation fails), ``dbsnaplake report --staging`` rebuilds it, and it opens offline in a browser (headless
Chromium here) with every plot, no console error and no request to anywhere else."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from html import escape as escape_html
from pathlib import Path

import pyarrow as pa
import pytest

from dbsnaplake import storage
from dbsnaplake.api import Ledger, PipelineConfig, run_pipeline
from dbsnaplake.layout import S3Location
from dbsnaplake.ledger import COMPACT, ETL
from dbsnaplake.records import GroupTiming, PartitionCheck, Totals
from dbsnaplake.report.facts import PartitionTotals, gather
from dbsnaplake.report.page import MISSING, render_page

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
HOSTILE = ('<script>alert("x")</script>', "a&b=1&amp;", "say=\"hi\" 'bye'", "ville=Zürich/城市=東京", "bell=\x07]]>")
"""Partition values are data: markup, entities, quotes, any Unicode, control characters."""
SVG = "{http://www.w3.org/2000/svg}"
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


def plots_of(page: str) -> dict[str, ET.Element]:
    """Each section's plot, parsed as XML (which fails on a plot that is not well-formed)."""
    sections = re.findall(r'<section id="([^"]+)">(.*?)</section>', page, re.DOTALL)
    return {
        key: ET.fromstring(m.group()) for key, body in sections if (m := re.search("<svg.*?</svg>", body, re.DOTALL))
    }


def texts_of(plot: ET.Element) -> list[str]:
    """What the plot writes (labels, titles) and its tooltips, as a reader sees them."""
    return ["".join(e.itertext()) for e in plot.iter() if e.tag in (f"{SVG}text", f"{SVG}title")]


def test_hostile_partition_values_are_text_in_well_formed_plots(ran: Ran) -> None:
    """10,000 partitions, the largest with <, &, quotes, non-ASCII and control characters in their values, all
    differing in validation: every plot parses as XML, shows those values as text (control characters as U+FFFD),
    and no markup of theirs gets into the page."""
    facts = gather(ran.staging)
    assert facts.validation is not None
    filler = [PartitionTotals(f"n={i:05d}", 1, 10_000, 100 + i % 7, 1, 10_000, 100 + i % 7) for i in range(10_000)]
    hostile = [PartitionTotals(v, 1, 2**30, 10**6 * (i + 1), 1, 2**30, 10**6 * (i + 1)) for i, v in enumerate(HOSTILE)]
    checks = [
        PartitionCheck(p.partition, Totals(1, p.staging_bytes, p.staging_records), Totals(1, p.lake_bytes, records))
        for p in [*filler, *hostile]
        for records in [p.lake_records - (p in hostile)]
    ]
    problems = tuple(f"partition {p.partition} differs" for p in hostile)
    validation = replace(facts.validation, partitions=tuple(checks), problems=problems, ok=False)
    page = render_page(replace(facts, partitions=tuple(filler + hostile), validation=validation))

    plots = plots_of(page)
    assert set(plots) == set(PLOTS)
    assert "<script" not in page.lower()
    assert not [e for plot in plots.values() for e in plot.iter() if e.tag.endswith("script")]
    shown = [v.replace("\x07", "\ufffd") for v in HOSTILE]
    partitions, validated = texts_of(plots["partitions"]), texts_of(plots["validation"])
    assert any(t.startswith("records per partition (top 20 of 10,005); largest / median = ") for t in partitions)
    for value in shown:
        assert value in partitions, f"{value!r} is not a label of the partitions plot"
        assert value in validated, f"{value!r} is not named in the validation plot"
    assert "5 partitions differ" in validated and "10,000 partitions match" in validated


def test_a_report_before_anything_ran_says_what_is_missing(ran: Ran) -> None:
    """No files, no groups, no stage times, no validation: the file sizes plot says so per layer, and the other
    sections say what has not happened instead of drawing an empty plot."""
    facts = gather(ran.staging)
    empty = replace(
        facts, snapshot_sizes=(), staging_sizes=(), lake_sizes=(), partitions=(), etl=(), compaction=(),
        run_times=None, validation=None,
    )  # fmt: skip
    page = render_page(empty)
    plots = plots_of(page)
    assert set(plots) == {"file-sizes"}
    for layer in ("snapshot", "staging", "data lake"):
        assert f"{layer}: no files yet" in texts_of(plots["file-sizes"])
    for key, note in MISSING.items():
        assert escape_html(note) in page.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]


def test_making_the_report_loads_no_plotting_library(ran: Ran) -> None:
    """The report is drawn by hand: building it imports no matplotlib (0.6 s to import, 1.8 s to draw with)."""
    code = f"import sys\nfrom dbsnaplake.report import write_report\nwrite_report({ran.staging!r})\n"
    code += "print('loaded:', [m for m in sys.modules if m.split('.')[0] == 'matplotlib'])\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "loaded: []", result.stdout
    assert "<svg" in ran.report.read_text()
