"""Benchmark: what the Delta commit of ``--table-format delta`` costs for a snapshot of N files.

Writes N tiny Parquet files in hive partition folders (``year=/month=/``, one value with ``%``-escapes), then times,
with the add actions built by :func:`dbsnaplake.formats.delta.add_actions` from a commit record as ``_SUCCESS``
holds it (the file writes are not timed):

- **actions**: building the N ``add`` actions from the commit record (partition values parsed from the paths);
- **create**: the table's first commit (``--publish historical``: the only one), N ``add`` actions;
- **overwrite**: the next snapshot's commit (``--publish latest``), N ``add`` + N ``remove`` actions;
- **reopen**: opening the table afterwards (what the next publish does to check its app transaction).

On local disk, and on a moto S3 server started on 127.0.0.1 (``--s3``; needs the ``test`` extra). Figures are
printed, best of ``--repeat``.

    python bench/bench_delta_commit.py                  # 1,000 files, local disk
    python bench/bench_delta_commit.py --files 1000 --s3
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support.s3_server for --s3

from dbsnaplake import storage
from dbsnaplake.formats.delta import add_actions, delta_uri, storage_options
from dbsnaplake.frames.partitioning import partition_path
from dbsnaplake.records import Commit, CommittedFile

BUCKET = "bench-delta"
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("year", pa.int32()), ("month", pa.string())])


def write_files(root: str, prefix: str, n_files: int) -> Commit:
    """N one-row files below ``root``/``prefix``, spread over partitions; the commit record listing them."""
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": [1], "name": ["x"]}), buffer)
    data = buffer.getvalue()
    files = []
    for index in range(n_files):
        month = "a/b%c" if index % 10 == 0 else f"{index % 12 + 1:02d}"
        path = f"{partition_path(['year', 'month'], [2000 + index % 20, month])}/part-{index:05d}-00000.parquet"
        storage.write_bytes(storage.join(root, prefix + path), data)
        files.append(CommittedFile(path=path, size=len(data), n_record=1))
    return Commit(version="x", fingerprint="x", published_at=time.time(), n_file=n_files, n_record=n_files,
                  files=tuple(files))  # fmt: skip


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def one_round(root: str, n_files: int) -> dict[str, float]:
    from deltalake import DeltaTable, Schema
    from deltalake.transaction import CommitProperties, Transaction, create_table_with_add_actions

    uri, options = delta_uri(root), storage_options(root)
    partitions = [SCHEMA.field("year"), SCHEMA.field("month")]
    commits = [write_files(root, f"version={n}/", n_files) for n in (1, 2)]
    start = time.perf_counter()
    first, second = (add_actions(c, f"version={n}/", partitions, 0) for n, c in enumerate(commits, 1))
    building = (time.perf_counter() - start) / 2
    schema = Schema.from_arrow(SCHEMA)

    def txn(n: int) -> CommitProperties:
        return CommitProperties(app_transactions=[Transaction("dbsnaplake", n)])

    figures = {
        "actions": building,
        "create": timed(lambda: create_table_with_add_actions(uri, schema, first, partition_by=["year", "month"],
                                                              storage_options=options, commit_properties=txn(1))),
    }  # fmt: skip
    table = DeltaTable(uri, storage_options=options)

    def overwrite() -> None:
        table.create_write_transaction(second, "overwrite", schema, partition_by=["year", "month"],
                                       commit_properties=txn(2))  # fmt: skip

    figures["overwrite"] = timed(overwrite)
    figures["reopen"] = timed(lambda: DeltaTable(uri, storage_options=options).transaction_version("dbsnaplake"))
    assert DeltaTable(uri, storage_options=options).to_pyarrow_table().num_rows == n_files
    return figures


@contextmanager
def roots(s3: bool) -> Iterator[Callable[[], str]]:
    """Fresh table folders: in a temporary folder, or on a moto S3 server started for the run."""
    if not s3:
        with tempfile.TemporaryDirectory() as folder:
            yield lambda: str(Path(folder) / uuid.uuid4().hex[:8])
        return
    from tests.support.s3_server import local_s3_server

    with local_s3_server(BUCKET):
        yield lambda: f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="on a local moto S3 server instead of local disk")
    args = parser.parse_args()
    with roots(args.s3) as new_root:
        rounds = [one_round(new_root(), args.files) for _ in range(args.repeat)]
    where = "moto S3 on 127.0.0.1" if args.s3 else "local disk"
    print(f"Delta commit of {args.files:,} files on {where}, best of {args.repeat}:")
    for name in rounds[0]:
        print(f"  {name:<10} {min(r[name] for r in rounds):7.3f} s")


if __name__ == "__main__":
    main()
