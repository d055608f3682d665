"""The run report: ``STAGING/manifests/report.html``, what the lake looks like and how the run went.

It shows file-size histograms of the snapshot, the staging lake and the data lake against the target band; records
and bytes per partition (top N, and the skew); time and bytes/s per stage; a Gantt of the groups on their workers
(stragglers stand out) with the slowest groups; and validation per partition. Everything comes from the staging
area's state (:mod:`.facts`), so ``dbsnaplake report --staging URI`` rebuilds it any time, on any machine; ``dbsnaplake
run`` writes it at its end (also when validation failed).

The plots are SVG written by hand (:mod:`.svg`, no plotting library: matplotlib took ~2 CPU-seconds per report)
and inlined in the page: one HTML file of some tens of KB that opens offline, with no script at all (no plotting
library's JavaScript to embed, ~4 MB for plotly, or to fetch from a CDN) and no server; text in the plots stays text
(searchable).
"""

from __future__ import annotations

from dbsnaplake import storage
from dbsnaplake.layout import S3Location


def write_report(staging: str) -> str:
    """Build the report of the staging area ``staging`` and write it to ``STAGING/manifests/report.html``; returns
    where it is. Fails (:class:`~dbsnaplake.errors.StageError`) when the staging area holds no plan."""
    from dbsnaplake.report.facts import gather
    from dbsnaplake.report.page import render_page

    location = S3Location(s3uri_staging=staging, s3uri_datalake=staging)
    page = render_page(gather(location.s3dir_staging))
    storage.write_bytes(location.s3path_report, page.encode())
    return location.s3path_report
