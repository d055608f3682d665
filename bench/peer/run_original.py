#!/usr/bin/env python3
"""Run the ORIGINAL dbsnaplake (PyPI 0.3.2) end to end against an S3 server that is already running.

Runs in its own virtual environment (``bench/out/venv-peer``, made by ``bench/bench_compare.py`` from
``requirements-peer.lock.txt`` next to this file), never in ours: the two packages share a name. Adapted from
the project's peer scripts (``run_peer.py``); unlike that script it starts no server of its own and uploads
nothing: ``bench_compare.py`` has already uploaded the snapshot to the same moto server ours reads, and passes
the uploaded files (``--files-json``: a JSON list of ``{uri, size, n_record, etag}``). The endpoint and the
credentials come from the ``AWS_*`` variables.

What it runs, with dbsnaplake 0.3.2's ``Project`` (one process, groups one after another):
connect_dynamodb (tracker tables on the same moto server) -> step_1_1 plan groups (``--groups`` groups) ->
step_1_2 process groups (read the group's files from S3, add year/month from ``order_time``, split by partition,
sort by ``order_time``, write staging) -> step_2_1 plan compaction -> step_2_2 compaction (``--target`` bytes)
-> step_3_1 validate (``count_column="order_id"``: scans every output file).

Prints one line ``RESULT {json}`` (seconds per step, errors); exits 1 if a step failed. The caller measures
wall time, CPU and memory from outside and checks the output itself.
"""

import argparse
import dataclasses
import json
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files-json", required=True, help="the uploaded snapshot files: [{uri, size, n_record, etag}]")
    ap.add_argument("--root", required=True, help="s3://bucket/prefix/ for the manifest, staging and data lake")
    ap.add_argument("--partition-by", default="year,month")
    ap.add_argument("--groups", type=int, default=15, help="target number of snapshot file groups")
    ap.add_argument("--target", type=int, default=128 * 1024**2, help="target data-lake file size, bytes")
    ap.add_argument("--tracker-table", default="dbsnaplake-tracker")
    args = ap.parse_args()

    import polars as pl
    from boto_session_manager import BotoSesManager
    from polars_writer.api import Writer
    from s3manifesto.api import KeyEnum
    from s3pathlib import S3Path, context

    from dbsnaplake.api import DBSnapshotManifestFile, Project, logger, read_many_parquet_from_s3

    @dataclasses.dataclass
    class BenchProject(Project):
        # the same user callback as the original's own tests/test_project.py, plus year/month
        def batch_read_snapshot_data_file(self, db_snapshot_file_group_manifest_file, **kwargs):
            s3path_list = [
                S3Path.from_s3_uri(data_file[KeyEnum.URI])
                for data_file in db_snapshot_file_group_manifest_file.data_file_list
            ]
            df = read_many_parquet_from_s3(s3path_list=s3path_list, s3_client=self.s3_client)
            return df.with_columns(
                year=pl.col("order_time").dt.year().cast(pl.Utf8),
                month=pl.col("order_time").dt.month().cast(pl.Utf8).str.zfill(2),
            )

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    region = os.environ.get("AWS_REGION", "us-east-1")
    bsm = BotoSesManager(region_name=region)
    context.attach_boto_session(bsm.boto_ses)
    s3 = bsm.boto_ses.client("s3")
    root = S3Path.from_s3_uri(args.root).to_dir()
    with open(args.files_json) as f:
        data_file_list = json.load(f)
    manifest = DBSnapshotManifestFile.new(
        uri=root.joinpath("snapshot/manifest/manifest-data.parquet").uri,
        uri_summary=root.joinpath("snapshot/manifest/manifest-summary.json").uri,
        data_file_list=data_file_list,
        details={"create_by": "bench/peer/run_original.py"},
        calculate=True,
    )
    manifest.write(s3_client=s3)

    writer = Writer(format="parquet")
    # validate's count_records() calls pl.scan_parquet(s3 uris, storage_options=writer.storage_options)
    writer.storage_options = {
        "aws_endpoint_url": endpoint,
        "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
        "aws_region": region,
        "aws_allow_http": "true",
    }
    project = BenchProject(
        s3_client=s3,
        s3uri_db_snapshot_manifest_summary=manifest.uri_summary,
        s3uri_staging=root.joinpath("staging").to_dir().uri,
        s3uri_datalake=root.joinpath("datalake").to_dir().uri,
        target_db_snapshot_file_group_size=int(manifest.size // args.groups) + 1,
        partition_keys=[k for k in args.partition_by.split(",") if k],
        create_datalake=True,
        sort_by=["order_time"],
        descending=[False],
        target_parquet_file_size=args.target,
        polars_writer=writer,
        gzip_compression=False,
        count_column="order_id",
        tracker_table_name=args.tracker_table,
        aws_region=region,
        use_case_id="bench",
    )

    steps: dict[str, float] = {}
    errors: dict[str, str] = {}

    def timed(name, fn):
        start = time.perf_counter()
        try:
            fn()
        except Exception as e:  # record, report, and stop
            errors[name] = f"{type(e).__name__}: {e}"[:2000]
        steps[name] = round(time.perf_counter() - start, 3)
        return name not in errors

    with logger.disabled(disable=True):
        for name, fn in [
            ("setup_tracker_tables", lambda: project.connect_dynamodb(bsm=bsm)),
            ("plan_groups", project.step_1_1_plan_snapshot_to_staging),
            ("process_groups", project.step_1_2_process_db_snapshot_file_group_manifest_file),
            ("plan_compaction", project.step_2_1_plan_staging_to_datalake),
            ("compaction", project.step_2_2_process_partition_file_group_manifest_file),
            ("validate", project.step_3_1_validate_datalake),
        ]:
            if not timed(name, fn):
                break
    result = {
        "steps_s": steps,
        "errors": errors,
        "groups_target_bytes": project.target_db_snapshot_file_group_size,
        "datalake": root.joinpath("datalake").to_dir().uri,
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
