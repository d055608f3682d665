"""The run report's plots, drawn with matplotlib and returned as SVG text to inline in the page.

Each function takes the :class:`~dbsnaplake.report.facts.ReportFacts` and returns one figure's SVG, or ``None``
when there is nothing to draw yet. matplotlib is imported here only, when a report is made: ``dbsnaplake --help``
and the stages never load it. Figures are made with the object API (``Figure``), never ``pyplot``: no global
state, no GUI backend, safe in worker threads.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from dbsnaplake.ledger import COMPACT, ETL
from dbsnaplake.report.facts import GroupRun, ReportFacts
from dbsnaplake.units import format_size

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH = 10.0
"""Inches; every figure is as wide, so the page lines them up."""
LAYER_COLORS = {"snapshot": "#7f8fa6", "staging": "#e1a03c", "data lake": "#2e8b57"}
STAGE_COLORS = {ETL: "#4c72b0", COMPACT: "#dd8452"}
TARGET_COLOR = "#2e8b57"
PROBLEM_COLOR = "#c0392b"
TOP_PARTITIONS = 20
STYLE: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays text: smaller, and searchable in the browser
    "svg.hashsalt": "dbsnaplake",  # the same run gives the same SVG
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
}


def _figure(height: float, ncols: int = 1, nrows: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, height), layout="constrained")
    return figure, figure.subplots(nrows, ncols, squeeze=False, **kwargs)


def to_svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element for an HTML page: no XML prolog, no metadata (nothing that names a URL)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)


def render(draw: Any, facts: ReportFacts) -> str | None:
    """``draw(facts)`` (a figure, or ``None``) as SVG, with the report's style."""
    import matplotlib

    with matplotlib.rc_context(cast(Any, STYLE)):  # matplotlib types the keys as literals
        figure = draw(facts)
        return None if figure is None else to_svg(figure)


def _size_axis(axis: Any, log: bool = False, unit: str = "") -> None:
    """Byte sizes on ``axis``: at powers of 2 on a log scale (1 KiB, 2 KiB, 4 KiB, ...), else at a few round values."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

    if log:
        axis.set_major_locator(LogLocator(base=2, numticks=30))
        axis.set_minor_locator(NullLocator())
    else:
        axis.set_major_locator(MaxNLocator(4))
    axis.set_major_formatter(FuncFormatter(lambda value, _: _compact_size(value) + unit if value > 0 else "0"))


def _compact_size(value: float) -> str:
    """``format_size`` without a needless ``.0``: 64 KiB, 1.5 MiB."""
    return format_size(int(value)).replace(".0 ", " ")


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


# ---- file sizes ----------------------------------------------------------------------------------------------


def file_sizes(facts: ReportFacts) -> Figure:
    """Histograms of file sizes (log scale) for the snapshot, the staging lake and the data lake, with the target
    file size and its ±10 % band."""
    import numpy as np

    layers = {"snapshot": facts.snapshot_sizes, "staging": facts.staging_sizes, "data lake": facts.lake_sizes}
    every = [s for sizes in layers.values() for s in sizes if s > 0] + [facts.target_file_size]
    bins = np.geomspace(min(every) / 1.2, max(every) * 1.2, 41)
    figure, axes = _figure(6.2, nrows=3, sharex=True)
    target = facts.target_file_size
    for ax, (layer, sizes) in zip(axes[:, 0], layers.items(), strict=True):
        ax.axvspan(0.9 * target, 1.1 * target, color=TARGET_COLOR, alpha=0.15, lw=0)
        ax.axvline(target, color=TARGET_COLOR, lw=1.2, ls="--")
        if not sizes:
            ax.set_title(f"{layer}: no files yet")
            continue
        ax.hist([s for s in sizes if s > 0], bins=bins, color=LAYER_COLORS[layer], edgecolor="white", lw=0.4)
        median = float(np.median(sizes))
        ax.set_title(
            f"{layer}: {len(sizes):,} files, {format_size(sum(sizes))}; median {format_size(int(median))}, "
            f"largest {format_size(max(sizes))}"
        )
        ax.set_ylabel("files")
    label = f" target {format_size(target)} ±10%"
    axes[0, 0].text(target, 1.0, label, color=TARGET_COLOR, transform=axes[0, 0].get_xaxis_transform(), va="top")
    ax = axes[-1, 0]
    ax.set_xscale("log")
    _size_axis(ax.xaxis, log=True)
    ax.set_xlabel("file size (log scale)")
    return figure


# ---- partitions ----------------------------------------------------------------------------------------------


def partitions(facts: ReportFacts) -> Figure | None:
    """The largest partitions by records and by data-lake bytes (top N), and the skew: largest over median."""
    if not facts.partitions:
        return None
    n = min(TOP_PARTITIONS, len(facts.partitions))
    figure, axes = _figure(1.2 + 0.22 * n, ncols=2)
    by_records = sorted(facts.partitions, key=lambda p: p.staging_records, reverse=True)[:n]
    lake_known = any(p.lake_bytes for p in facts.partitions)
    by_bytes = sorted(facts.partitions, key=lambda p: p.lake_bytes if lake_known else p.staging_bytes, reverse=True)[:n]
    skew = facts.records_skew()
    shown = f"top {n} of {len(facts.partitions):,}" if n < len(facts.partitions) else f"all {n}"
    _bars(axes[0, 0], [p.name for p in by_records], [p.staging_records for p in by_records], "#4c72b0")
    axes[0, 0].set_title(
        f"records per partition ({shown})" + (f"; largest / median = {skew:.1f}x" if skew is not None else "")
    )
    axes[0, 0].set_xlabel("records")
    layer = "data lake" if lake_known else "staging"
    values = [p.lake_bytes if lake_known else p.staging_bytes for p in by_bytes]
    _bars(axes[0, 1], [p.name for p in by_bytes], values, LAYER_COLORS[layer])
    axes[0, 1].set_title(f"{layer} bytes per partition ({shown})")
    _size_axis(axes[0, 1].xaxis)
    return figure


def _bars(ax: Axes, labels: Sequence[str], values: Sequence[float], color: str) -> None:
    positions = list(range(len(labels)))
    ax.barh(positions, values, color=color)
    ax.set_yticks(positions, [_short(label) for label in labels])
    ax.invert_yaxis()  # the largest on top
    ax.tick_params(axis="y", labelsize=8)


def _short(label: str, limit: int = 32) -> str:
    return label if len(label) <= limit else "…" + label[-(limit - 1) :]


# ---- time ----------------------------------------------------------------------------------------------------


def stage_times(facts: ReportFacts) -> Figure | None:
    """Seconds per stage of the last run, and the bytes per second of the stages that move data (a resumed stage
    only did what was left, so it has none)."""
    times = facts.run_times
    if times is None:
        return None
    stages = list(times.seconds)
    seconds = [times.seconds[s] for s in stages]
    covered = stage_bytes(facts)
    figure, axes = _figure(2.6, ncols=2)
    ax = axes[0, 0]
    positions = list(range(len(stages)))
    ax.barh(positions, seconds, color="#4c72b0")
    ax.set_yticks(positions, [_stage_label(s, times.skipped.get(s, 0)) for s in stages])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title(f"time per stage: {sum(seconds):.1f} s in all")
    for y, value in zip(positions, seconds, strict=True):
        ax.text(value, y, f" {value:.1f}s", va="center", fontsize=8)
    ax = axes[0, 1]
    rates = [
        covered.get(s, 0) / t if t > 0 and not times.skipped.get(s) else 0.0
        for s, t in zip(stages, seconds, strict=True)
    ]
    ax.barh(positions, rates, color="#55a868")
    ax.set_yticks(positions, stages)
    ax.invert_yaxis()
    _size_axis(ax.xaxis, unit="/s")
    ax.set_xlabel("bytes per second")
    ax.set_title("bytes/s per stage (the stages that move data)")
    for y, stage, rate in zip(positions, stages, rates, strict=True):
        label = f" {format_size(int(rate))}/s" if rate else " resumed" if times.skipped.get(stage) else " metadata only"
        ax.text(rate, y, label, va="center", fontsize=8, color="#222222" if rate else "#888888")
    return figure


def _stage_label(stage: str, skipped: int) -> str:
    return f"{stage} (resumed)" if skipped else stage


def stage_bytes(facts: ReportFacts) -> dict[str, int]:
    """The bytes the stages that move data go through: ETL reads the snapshot, compaction the staging lake. (The
    other stages read metadata only: a rate of theirs would mean nothing.)"""
    return {ETL: sum(facts.snapshot_sizes), COMPACT: sum(facts.staging_sizes)}


def gantt(facts: ReportFacts) -> Figure | None:
    """Every group as a bar on the lane of the worker (host:pid) that ran it, over time: stragglers stand out.
    The slowest group of each stage is outlined in red and labelled."""
    runs = facts.group_runs
    if not runs:
        return None
    origin = min(r.timing.started_at for r in runs)
    workers = sorted(
        {r.timing.worker for r in runs}, key=lambda w: min(r.timing.started_at for r in runs if r.timing.worker == w)
    )
    lane = {w: i for i, w in enumerate(workers)}
    figure, axes = _figure(1.4 + 0.32 * len(workers))
    ax = axes[0, 0]
    slowest = {
        stage: max((r for r in runs if r.stage == stage), key=lambda r: r.timing.seconds, default=None)
        for stage in STAGE_COLORS
    }
    for run in runs:
        start = run.timing.started_at - origin
        is_slowest = slowest.get(run.stage) is run
        ax.barh(
            lane[run.timing.worker],
            run.timing.seconds,
            left=start,
            height=0.7,
            color=STAGE_COLORS[run.stage],
            edgecolor=PROBLEM_COLOR if is_slowest else "white",
            linewidth=1.5 if is_slowest else 0.5,
        )
    span = max(r.timing.finished_at for r in runs) - origin
    for stage, straggler in slowest.items():
        if straggler is not None:
            ax.annotate(
                f"slowest {stage}: group {straggler.group}, {straggler.timing.seconds:.1f}s",
                (straggler.timing.finished_at - origin, lane[straggler.timing.worker]),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color=PROBLEM_COLOR,
                bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1},
            )
    ax.set_yticks(range(len(workers)), workers)
    ax.tick_params(axis="y", labelsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, span * 1.25 or 1)
    ax.set_xlabel("seconds since the first group started")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=s) for s, c in STAGE_COLORS.items()], loc="lower right", fontsize=8)
    ax.set_title(f"groups per worker over time: {len(runs)} groups on {len(workers)} workers")
    return figure


def slowest_groups(facts: ReportFacts, count: int = 10) -> list[GroupRun]:
    """The ``count`` longest-running groups, longest first."""
    return sorted(facts.group_runs, key=lambda r: r.timing.seconds, reverse=True)[:count]


# ---- validation ----------------------------------------------------------------------------------------------


def validation(facts: ReportFacts) -> Figure | None:
    """Per partition, the records staging holds against those the data lake holds: every partition is on the
    diagonal when they match; one that does not is red and named."""
    result = facts.validation
    if result is None or not result.partitions:
        return None
    figure, axes = _figure(3.2)
    ax = axes[0, 0]
    good = [p for p in result.partitions if p.ok]
    bad = [p for p in result.partitions if not p.ok]
    top = max(max(p.staging.records, p.datalake.records) for p in result.partitions) * 1.05 or 1
    ax.plot([0, top], [0, top], color="#999999", lw=1, ls="--", label="staging = data lake")
    ax.scatter(
        [p.staging.records for p in good],
        [p.datalake.records for p in good],
        s=14,
        color=TARGET_COLOR,
        label=f"{len(good):,} partitions match",
    )
    if bad:
        ax.scatter(
            [p.staging.records for p in bad],
            [p.datalake.records for p in bad],
            s=22,
            color=PROBLEM_COLOR,
            label=f"{len(bad):,} partitions differ",
        )
        for p in bad[:10]:
            ax.annotate(
                _short(p.partition or "(unpartitioned)"),
                (p.staging.records, p.datalake.records),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
                color=PROBLEM_COLOR,
            )
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("records in staging")
    ax.set_ylabel("records in the data lake")
    ax.legend(loc="upper left", fontsize=8)
    verdict = "OK" if result.ok else f"FAILED ({len(result.problems)} problems)"
    ax.set_title(f"validation per partition: {verdict}")
    return figure
