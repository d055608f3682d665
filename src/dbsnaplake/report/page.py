"""The run report as one HTML page: a summary, then each plot (inline SVG) with a line on how to read it, and
the tables an operator looks things up in (slowest groups, validation problems). No script, no stylesheet or
font from elsewhere: the file opens offline, from a mail or a bucket, in any browser."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from html import escape

from dbsnaplake.report import plots
from dbsnaplake.report.facts import ReportFacts
from dbsnaplake.units import format_size
from dbsnaplake.version import __version__

CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1000px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; word-break: break-all; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
caption { text-align: left; font-weight: bold; padding: 0.2em 0; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #2e8b57; font-weight: bold; } .bad { color: #c0392b; font-weight: bold; }
.note { background: #fff7e0; border-left: 4px solid #e1a03c; padding: 0.4em 0.8em; margin: 0.3em 0; }
figure { margin: 0.5em 0; } figure svg { width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; margin-bottom: 0.3em; }
"""

SHOWN_ROWS = 50
"""Rows of a table at most (the plots show every partition)."""
Section = tuple[str, str, Callable[[ReportFacts], str | None]]
SECTIONS: tuple[Section, ...] = (
    ("file-sizes", "File sizes: snapshot, staging, data lake", plots.file_sizes),
    ("partitions", "Records and bytes per partition", plots.partitions),
    ("stage-times", "Time and bytes/s per stage", plots.stage_times),
    ("workers", "Groups per worker (Gantt)", plots.gantt),
    ("validation", "Validation per partition", plots.validation),
)
CAPTIONS = {
    "file-sizes": "How many files of each size each layer holds (log scale). The green band is the target file "
    "size ±10%: data-lake files belong in it, except each partition's last, smaller file.",
    "partitions": "The largest partitions. A largest / median ratio far above 1 is skew: one partition's "
    "compaction takes longer than the others', and readers of it scan more.",
    "stage-times": "Wall-clock seconds of each stage in the last 'dbsnaplake run', and the bytes each stage "
    "went through per second (resumed stages only did what was left).",
    "workers": "Each bar is one group on the worker process (host:pid) that ran it. A long bar that ends after "
    "the others is a straggler: its group held more bytes, or its worker was slower.",
    "validation": "Each dot is a partition: its records in staging against its records in the data lake. "
    "On the dashed line they match.",
}
MISSING = {
    "partitions": "No staging files yet: ETL has not finished a group.",
    "stage-times": "No 'dbsnaplake run' has finished here (stage commands run one by one record no stage times).",
    "workers": "No group has finished yet (or they ran with a dbsnaplake that did not record timings).",
    "validation": "The data lake has not been validated yet.",
}


def render_page(facts: ReportFacts) -> str:
    """The whole report page."""
    parts = [_header(facts)]
    for key, title, draw in SECTIONS:
        svg = draw(facts)
        parts.append(f'<section id="{key}"><h2>{escape(title)}</h2>')
        if svg is None:
            parts.append(f'<p class="note">{escape(MISSING[key])}</p>')
        else:
            parts.append(f"<figure><figcaption>{escape(CAPTIONS[key])}</figcaption>{svg}</figure>")
        parts.append(_tables(key, facts))
        parts.append("</section>")
    title = f"dbsnaplake run report: {facts.staging}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def _header(facts: ReportFacts) -> str:
    v, stats = facts.validation, facts.plan.stats
    verdict = '<span class="bad">not validated</span>'
    if v is not None:
        verdict = (
            '<span class="ok">OK</span>' if v.ok else f'<span class="bad">FAILED ({len(v.problems)} problems)</span>'
        )
    rows = [
        ("snapshot", f"{stats.n_file:,} files, {format_size(stats.size)}, {_records(stats.n_record)} records"),
        ("staging", f"{len(facts.staging_sizes):,} files, {format_size(sum(facts.staging_sizes))}"),
        (
            "data lake",
            f"{len(facts.lake_sizes):,} files, {format_size(sum(facts.lake_sizes))}, "
            f"{sum(p.lake_records for p in facts.partitions):,} records in {len(facts.partitions):,} partitions",
        ),
        ("target file size", format_size(facts.target_file_size)),
        ("partitioned by", ", ".join(facts.config.partition_by) or "(not partitioned)"),
        ("groups", f"{len(facts.plan.group_manifests):,} ETL groups, {_compaction_groups(facts)}"),
        ("published to", facts.plan.version_root),
    ]
    times = facts.run_times
    if times is not None:
        when = dt.datetime.fromtimestamp(times.started_at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        rows.append(
            (
                "last run",
                f"{when}, {times.finished_at - times.started_at:.1f} s, {times.workers} workers ({times.executor})",
            )
        )
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(value)}</td></tr>" for k, value in rows)
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in facts.notes)
    made = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<h1>dbsnaplake run report</h1><p class="sub">{escape(facts.staging)} — made {made} by dbsnaplake '
        f"{escape(__version__)}</p><p>Validation: {verdict}</p><table>{table}</table>{notes}"
    )


def _compaction_groups(facts: ReportFacts) -> str:
    plan = facts.compaction_plan
    return "compaction not planned" if plan is None else f"{len(plan.group_manifests):,} compaction groups"


def _records(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


def _tables(key: str, facts: ReportFacts) -> str:
    if key == "workers":
        runs = plots.slowest_groups(facts)
        rows = [
            (
                r.stage,
                str(r.group),
                f"{r.timing.seconds:.2f}",
                format_size(r.size_in),
                f"{format_size(int(r.bytes_per_second))}/s",
                r.timing.worker,
                r.what,
            )
            for r in runs
        ]
        return _table("Slowest groups", ("stage", "group", "seconds", "bytes in", "bytes/s", "worker", "input"), rows)
    if key == "validation" and facts.validation is not None:
        v = facts.validation
        problems = "".join(f"<li>{escape(p)}</li>" for p in v.problems)
        differ = [
            (
                p.partition or "(unpartitioned)",
                f"{p.staging.records:,}",
                f"{p.datalake.records:,}",
                str(p.datalake.files),
            )
            for p in v.partitions
            if not p.ok
        ]
        caption = "Partitions that differ" + (
            f" (the first {SHOWN_ROWS} of {len(differ):,})" if len(differ) > SHOWN_ROWS else ""
        )
        return (f"<ul>{problems}</ul>" if problems else "") + _table(
            caption, ("partition", "staging records", "data-lake records", "data-lake files"), differ[:SHOWN_ROWS]
        )
    return ""


def _table(caption: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"n" if _is_number(c) else ""}">{escape(c)}</td>' for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><caption>{escape(caption)}</caption><tr>{header}</tr>{body}</table>"


def _is_number(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).isdigit()
