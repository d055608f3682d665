"""The cost of the table commit of the publish step, for N data-lake files (default 1,000).

    python bench/bench_table_commit.py --format iceberg                    # 1,000 files on local disk
    python bench/bench_table_commit.py --format iceberg --files 1000 --s3  # on a moto S3 server started here

Writes N small Parquet files (100 rows each, partitioned by year/month, the partition columns inside the files as
``--table-format iceberg`` writes them) into a data-lake folder, then times what the publish step adds for the
format: :func:`dbsnaplake.formats.iceberg.commit_iceberg` (read each footer, create the table, one commit) into the
default SQLite catalog, then a second commit of the same files as a new snapshot (an overwrite that also removes
the first snapshot's N entries). Prints the seconds of each.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig, S3Location

BUCKET = "dbsnaplake-bench"


def write_files(lake: str, n_files: int) -> list[str]:
    """``n_files`` files of 100 rows over 12 months x 2 years: ``year=Y/month=MM/part-00000-<k>.parquet``."""

    def write(index: int) -> str:
        year, month = 2023 + index % 2, f"{index % 12 + 1:02d}"
        table = pa.table(
            {
                "id": pa.array(range(index * 100, index * 100 + 100), pa.int64()),
                "amount": pa.array([i * 0.5 for i in range(100)], pa.float64()),
                "year": pa.array([year] * 100, pa.int32()),
                "month": pa.array([month] * 100, pa.string()),
            }
        )
        uri = storage.join(lake, f"year={year}", f"month={month}", f"part-00000-{index:05d}.parquet")
        with storage.atomic_output(uri) as local:
            pq.write_table(table, local)
        return uri

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(write, range(n_files)))


@contextlib.contextmanager
def where(s3: bool) -> Iterator[str]:
    if not s3:
        with tempfile.TemporaryDirectory() as folder:
            yield folder
        return
    from tests.support.s3_server import local_s3_server  # the tests' moto server

    with local_s3_server(BUCKET), tempfile.TemporaryDirectory() as folder:
        os.environ["HOME"] = folder  # the default catalog of an S3 lake: ~/.dbsnaplake/iceberg-catalog.db
        yield f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=["iceberg"], default="iceberg")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--s3", action="store_true", help="on a moto S3 server on 127.0.0.1 (started here)")
    args = parser.parse_args()
    from dbsnaplake.formats.iceberg import commit_iceberg

    with where(args.s3) as root:
        lake = storage.as_dir(storage.join(root, "datalake", "db", "bench"))
        config = PipelineConfig(
            location=S3Location(s3uri_staging=storage.join(root, "staging"), s3uri_datalake=lake),
            partition_by=("year", "month"),
            table_format=args.format,
        )
        started = time.perf_counter()
        files = write_files(lake, args.files)
        sizes = {uri: storage.head(uri).size for uri in files}  # publish knows them from the compaction results
        print(f"wrote {len(files):,} files in {time.perf_counter() - started:.1f} s ({root})")
        for label, version in (
            ("first commit (create + append)", "2024_01_01_00_00_00"),
            ("overwrite", "2024_02_01_00_00_00"),
        ):
            started = time.perf_counter()
            outcome = commit_iceberg(config, uuid.uuid4().hex, version, sizes)
            print(f"{args.format} {label}: {len(files):,} files in {time.perf_counter() - started:.2f} s ({outcome})")


if __name__ == "__main__":
    main()
