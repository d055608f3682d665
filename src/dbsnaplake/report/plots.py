"""The run report's plots, drawn as SVG (:mod:`.svg`) to inline in the page.

Each function takes the :class:`~dbsnaplake.report.facts.ReportFacts` and returns one figure's ``<svg>`` element,
or ``None`` when there is nothing to draw yet. The same facts give the same SVG.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import NamedTuple

from dbsnaplake.ledger import COMPACT, ETL
from dbsnaplake.report import svg
from dbsnaplake.report.facts import GroupRun, ReportFacts
from dbsnaplake.report.svg import SMALL, Canvas, Scale
from dbsnaplake.units import format_size

LAYER_COLORS = {"snapshot": "#7f8fa6", "staging": "#e1a03c", "data lake": "#2e8b57"}
STAGE_COLORS = {ETL: "#4c72b0", COMPACT: "#dd8452"}
TARGET_COLOR = "#2e8b57"
PROBLEM_COLOR = "#c0392b"
TOP_PARTITIONS = 20
BINS = 40
"""Bars of a file-size histogram."""
ROW = 22.0
"""Pixels per bar of a bar chart."""
LANE = 32.0
"""Pixels per worker of the Gantt."""
TITLE_ROOM = 30.0
"""Above a plot: its title."""
AXIS_ROOM = 44.0
"""Below a plot: the ticks' labels and the axis title."""
RIGHT = svg.WIDTH - 16
"""Where the plots end, on the right."""


def compact_size(value: float) -> str:
    """``format_size`` without a needless ``.0``: 64 KiB, 1.5 MiB."""
    return format_size(int(value)).replace(".0 ", " ") if value > 0 else "0"


# ---- file sizes ----------------------------------------------------------------------------------------------

HISTOGRAM_HEIGHT = 120.0


def file_sizes(facts: ReportFacts) -> str:
    """Histograms of file sizes (log scale) for the snapshot, the staging lake and the data lake, with the target
    file size and its ±10 % band."""
    layers = {"snapshot": facts.snapshot_sizes, "staging": facts.staging_sizes, "data lake": facts.lake_sizes}
    target = facts.target_file_size
    every = [s for sizes in layers.values() for s in sizes if s > 0] + [target]
    low, high = min(every) / 1.2, max(every) * 1.2
    edges = [low * (high / low) ** (i / BINS) for i in range(BINS + 1)]
    panel = TITLE_ROOM + HISTOGRAM_HEIGHT + 8
    canvas = Canvas(3 * panel + AXIS_ROOM)
    x = Scale(low, high, 64, RIGHT, log=True)
    ticks = svg.power_of_two_ticks(low, high)
    for i, (layer, sizes) in enumerate(layers.items()):
        bottom = i * panel + TITLE_ROOM + HISTOGRAM_HEIGHT
        _histogram(canvas, x, bottom, layer, sizes, edges, target)
        last = i == len(layers) - 1
        svg.x_axis(
            canvas, x, bottom, ticks, compact_size if last else lambda _: "", "file size (log scale)" if last else ""
        )
    label = f"target {format_size(target)} ±10%"
    right_of_line = x(target) + 4 + svg.text_width(label, SMALL) < svg.WIDTH
    at = x(target) + 4 if right_of_line else x(target) - 4
    canvas.text(at, TITLE_ROOM + 12, label, SMALL, anchor="start" if right_of_line else "end", fill=TARGET_COLOR)
    return canvas.to_svg()


def _histogram(
    canvas: Canvas, x: Scale, bottom: float, layer: str, sizes: Sequence[int], edges: Sequence[float], target: int
) -> None:
    """One layer's histogram, its bottom at ``bottom``, over the target band."""
    top = bottom - HISTOGRAM_HEIGHT
    canvas.rect(x(0.9 * target), top, x(1.1 * target) - x(0.9 * target), HISTOGRAM_HEIGHT, TARGET_COLOR, opacity=0.15)
    canvas.line(x(target), top, x(target), bottom, TARGET_COLOR, stroke_width=1.2, stroke_dasharray="5 3")
    if not sizes:
        svg.title(canvas, x.start, top - 10, f"{layer}: no files yet")
        return
    counts = [0] * (len(edges) - 1)
    for size in sizes:
        if size > 0:
            counts[min(max(bisect.bisect_right(edges, size) - 1, 0), len(counts) - 1)] += 1
    ticks = svg.round_ticks(max(counts), 4, whole=True)
    y = Scale(0, ticks[-1], bottom, top)
    for count, (left, right) in zip(counts, pairwise(edges), strict=True):
        if count:
            tip = f"{count:,} files of {compact_size(left)} to {compact_size(right)}"
            canvas.rect(
                x(left),
                y(count),
                x(right) - x(left),
                bottom - y(count),
                LAYER_COLORS[layer],
                tip,
                stroke="white",
                stroke_width=0.5,
            )
    svg.y_axis(canvas, y, x.start, ticks, "{:g}".format, "files")
    svg.title(
        canvas,
        x.start,
        top - 10,
        f"{layer}: {len(sizes):,} files, {format_size(sum(sizes))}; median {format_size(int(statistics.median(sizes)))}, "
        f"largest {format_size(max(sizes))}",
    )


# ---- bar charts ----------------------------------------------------------------------------------------------


class Bar(NamedTuple):
    """One bar of a horizontal bar chart."""

    label: str
    value: float
    tip: str
    note: str = ""
    """Written at the bar's end."""
    muted: bool = False
    """The note in grey: not a value."""


def _bar_chart(
    canvas: Canvas,
    left: float,
    right: float,
    heading: str,
    bars: Sequence[Bar],
    color: str,
    ticks: Callable[[float], list[float]],
    tick_label: Callable[[float], str],
    axis_title: str = "",
) -> None:
    """Horizontal bars, top down, between ``left`` and ``right``: their labels on the left, the axis below."""
    labels = [_short(bar.label) for bar in bars]
    notes_room = max((svg.text_width(bar.note, SMALL) for bar in bars), default=0.0)
    values = ticks(max((bar.value for bar in bars), default=0.0))
    x = Scale(
        0, values[-1], left + max(svg.text_width(label, SMALL) for label in labels) + 10, right - max(notes_room, 24)
    )
    svg.title(canvas, left, 18, heading)
    for i, (bar, label) in enumerate(zip(bars, labels, strict=True)):
        middle = TITLE_ROOM + ROW * (i + 0.5)
        canvas.rect(x.start, middle - ROW * 0.35, x(bar.value) - x.start, ROW * 0.7, color, bar.tip)
        canvas.text(x.start - 6, middle, label, SMALL, anchor="end", middle=True)
        if bar.note:
            canvas.text(
                x(bar.value) + 3,
                middle,
                bar.note,
                SMALL,
                middle=True,
                fill=svg.MUTED_COLOR if bar.muted else svg.TEXT_COLOR,
            )
    bottom = TITLE_ROOM + ROW * len(bars)
    canvas.line(x.start, TITLE_ROOM, x.start, bottom)
    svg.x_axis(canvas, x, bottom, values, tick_label, axis_title)


def _bar_chart_height(bars: int) -> float:
    return TITLE_ROOM + ROW * bars + AXIS_ROOM


def _short(label: str, limit: int = 32) -> str:
    return label if len(label) <= limit else "…" + label[-(limit - 1) :]


# ---- partitions ----------------------------------------------------------------------------------------------


def partitions(facts: ReportFacts) -> str | None:
    """The largest partitions by records and by data-lake bytes (top N), and the skew: largest over median."""
    if not facts.partitions:
        return None
    n = min(TOP_PARTITIONS, len(facts.partitions))
    by_records = sorted(facts.partitions, key=lambda p: p.staging_records, reverse=True)[:n]
    lake_known = any(p.lake_bytes for p in facts.partitions)
    by_bytes = sorted(facts.partitions, key=lambda p: p.lake_bytes if lake_known else p.staging_bytes, reverse=True)[:n]
    skew = facts.records_skew()
    shown = f"top {n} of {len(facts.partitions):,}" if n < len(facts.partitions) else f"all {n}"
    layer = "data lake" if lake_known else "staging"
    canvas = Canvas(_bar_chart_height(n))
    _bar_chart(
        canvas,
        0,
        svg.WIDTH / 2 - 16,
        f"records per partition ({shown})" + (f"; largest / median = {skew:.1f}x" if skew is not None else ""),
        [Bar(p.name, p.staging_records, f"{p.name}: {p.staging_records:,} records") for p in by_records],
        "#4c72b0",
        svg.count_ticks,
        svg.count_label,
        "records",
    )
    sizes = [(p, p.lake_bytes if lake_known else p.staging_bytes) for p in by_bytes]
    _bar_chart(
        canvas,
        svg.WIDTH / 2,
        RIGHT,
        f"{layer} bytes per partition ({shown})",
        [Bar(p.name, size, f"{p.name}: {format_size(size)}") for p, size in sizes],
        LAYER_COLORS[layer],
        svg.size_ticks,
        compact_size,
        "bytes",
    )
    return canvas.to_svg()


# ---- time ----------------------------------------------------------------------------------------------------


def stage_times(facts: ReportFacts) -> str | None:
    """Seconds per stage of the last run, and the bytes per second of the stages that move data (a resumed stage
    only did what was left, so it has none)."""
    times = facts.run_times
    if times is None:
        return None
    stages = list(times.seconds)
    covered = stage_bytes(facts)
    canvas = Canvas(_bar_chart_height(len(stages)))
    seconds = [
        Bar(_stage_label(stage, times.skipped.get(stage, 0)), t, f"{stage}: {t:.1f} s", f"{t:.1f}s")
        for stage, t in times.seconds.items()
    ]
    total = sum(times.seconds.values())
    _bar_chart(
        canvas,
        0,
        svg.WIDTH / 2 - 16,
        f"time per stage: {total:.1f} s in all",
        seconds,
        "#4c72b0",
        svg.round_ticks,
        "{:g}".format,
        "seconds",
    )
    rates = []
    for stage, t in times.seconds.items():
        rate = covered.get(stage, 0) / t if t > 0 and not times.skipped.get(stage) else 0.0
        note = f"{format_size(int(rate))}/s" if rate else "resumed" if times.skipped.get(stage) else "metadata only"
        rates.append(Bar(stage, rate, f"{stage}: {note}", note, muted=not rate))
    _bar_chart(
        canvas,
        svg.WIDTH / 2,
        RIGHT,
        "bytes/s per stage (the stages that move data)",
        rates,
        "#55a868",
        svg.size_ticks,
        lambda value: compact_size(value) + "/s" if value else "0",
        "bytes per second",
    )
    return canvas.to_svg()


def _stage_label(stage: str, skipped: int) -> str:
    return f"{stage} (resumed)" if skipped else stage


def stage_bytes(facts: ReportFacts) -> dict[str, int]:
    """The bytes the stages that move data go through: ETL reads the snapshot, compaction the staging lake. (The
    other stages read metadata only: a rate of theirs would mean nothing.)"""
    return {ETL: sum(facts.snapshot_sizes), COMPACT: sum(facts.staging_sizes)}


def gantt(facts: ReportFacts) -> str | None:
    """Every group as a bar on the lane of the worker (host:pid) that ran it, over time: stragglers stand out.
    The slowest group of each stage is outlined in red and labelled."""
    runs = facts.group_runs
    if not runs:
        return None
    origin = min(r.timing.started_at for r in runs)
    workers = sorted(
        {r.timing.worker for r in runs}, key=lambda w: min(r.timing.started_at for r in runs if r.timing.worker == w)
    )
    lane = {w: TITLE_ROOM + LANE * (i + 0.5) for i, w in enumerate(workers)}
    slowest = {
        stage: max((r for r in runs if r.stage == stage), key=lambda r: r.timing.seconds, default=None)
        for stage in STAGE_COLORS
    }
    span = max(r.timing.finished_at for r in runs) - origin
    ticks = svg.round_ticks(span * 1.25)
    legend_left = RIGHT - 90
    x = Scale(0, ticks[-1], max(svg.text_width(w, SMALL) for w in workers) + 10, legend_left - 16)
    canvas = Canvas(TITLE_ROOM + LANE * len(workers) + AXIS_ROOM)
    svg.title(canvas, 0, 18, f"groups per worker over time: {len(runs)} groups on {len(workers)} workers")
    for worker, middle in lane.items():
        canvas.text(x.start - 6, middle, worker, SMALL, anchor="end", middle=True)
    for run in sorted(runs, key=lambda r: slowest.get(r.stage) is r):  # the outlined ones on top
        start, outlined = run.timing.started_at - origin, slowest.get(run.stage) is run
        canvas.rect(
            x(start),
            lane[run.timing.worker] - LANE * 0.35,
            x(start + run.timing.seconds) - x(start),
            LANE * 0.7,
            STAGE_COLORS[run.stage],
            f"{run.stage} group {run.group}: {run.timing.seconds:.1f} s, {format_size(run.size_in)}, {run.what}",
            stroke=PROBLEM_COLOR if outlined else "white",
            stroke_width=1.5 if outlined else 0.5,
        )
    for stage, straggler in slowest.items():
        if straggler is not None:
            _straggler_label(
                canvas, x, lane[straggler.timing.worker], straggler.timing.finished_at - origin, stage, straggler
            )
    bottom = TITLE_ROOM + LANE * len(workers)
    canvas.line(x.start, TITLE_ROOM, x.start, bottom)
    svg.x_axis(canvas, x, bottom, ticks, "{:g}".format, "seconds since the first group started")
    svg.legend(canvas, legend_left, TITLE_ROOM, [("bar", color, stage) for stage, color in STAGE_COLORS.items()])
    return canvas.to_svg()


def _straggler_label(canvas: Canvas, x: Scale, middle: float, finished: float, stage: str, run: GroupRun) -> None:
    """The label 'slowest etl: group 5, 5.8s' on a white ground, after the group's bar (or over the bar's end if
    there is no room after it)."""
    label = f"slowest {stage}: group {run.group}, {run.timing.seconds:.1f}s"
    width = svg.text_width(label, SMALL)
    after = x(finished) + 4 + width < x.end
    left = x(finished) + 4 if after else x(finished) - 4 - width
    canvas.rect(left - 2, middle - 8, width + 4, 16, "white", opacity=0.85)
    canvas.text(left, middle, label, SMALL, middle=True, fill=PROBLEM_COLOR)


def slowest_groups(facts: ReportFacts, count: int = 10) -> list[GroupRun]:
    """The ``count`` longest-running groups, longest first."""
    return sorted(facts.group_runs, key=lambda r: r.timing.seconds, reverse=True)[:count]


# ---- validation ----------------------------------------------------------------------------------------------


def validation(facts: ReportFacts) -> str | None:
    """Per partition, the records staging holds against those the data lake holds: every partition is on the
    diagonal when they match; one that does not is red and named."""
    result = facts.validation
    if result is None or not result.partitions:
        return None
    good = [p for p in result.partitions if p.ok]
    bad = [p for p in result.partitions if not p.ok]
    ticks = svg.count_ticks(max(max(p.staging.records, p.datalake.records) for p in result.partitions) * 1.05)
    x = Scale(0, ticks[-1], 80, RIGHT)
    y = Scale(0, ticks[-1], TITLE_ROOM + 230, TITLE_ROOM)
    canvas = Canvas(y.start + AXIS_ROOM)
    verdict = "OK" if result.ok else f"FAILED ({len(result.problems)} problems)"
    svg.title(canvas, 0, 18, f"validation per partition: {verdict}")
    canvas.line(x(0), y(0), x(ticks[-1]), y(ticks[-1]), "#999999", stroke_dasharray="5 3")
    drawn: set[tuple[int, int]] = set()
    for p in good:
        at = (round(x(p.staging.records)), round(y(p.datalake.records)))
        if at not in drawn:  # thousands of partitions of the same size: one dot
            drawn.add(at)
            canvas.dot(x(p.staging.records), y(p.datalake.records), 3, TARGET_COLOR)
    for p in bad:
        name = p.partition or "(unpartitioned)"
        tip = f"{name}: {p.staging.records:,} records in staging, {p.datalake.records:,} in the data lake"
        canvas.dot(x(p.staging.records), y(p.datalake.records), 4, PROBLEM_COLOR, tip)
    for p in bad[:10]:
        label, dot = _short(p.partition or "(unpartitioned)"), x(p.staging.records)
        fits = dot + 5 + svg.text_width(label, SMALL) < svg.WIDTH  # else on the dot's left, not cut off
        left, anchor = (dot + 5, "start") if fits else (dot - 5, "end")
        canvas.text(left, y(p.datalake.records) - 5, label, SMALL, anchor=anchor, fill=PROBLEM_COLOR)
    svg.x_axis(canvas, x, y.start, ticks, svg.count_label, "records in staging")
    svg.y_axis(canvas, y, x.start, ticks, svg.count_label, "records in the data lake")
    entries = [("dashed", "#999999", "staging = data lake"), ("dot", TARGET_COLOR, f"{len(good):,} partitions match")]
    if bad:
        entries.append(("dot", PROBLEM_COLOR, f"{len(bad):,} partitions differ"))
    svg.legend(canvas, x.start + 8, y.end + 4, entries)
    return canvas.to_svg()
