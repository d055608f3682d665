"""How much memory the ETL stage needs: one model shared by the planner (which sizes groups to fit
``--worker-memory``) and the ETL stage (which spills sorted runs to local disk should a group not fit after all).

An ETL worker holds the interpreter (:data:`WORKER_BASE_MEMORY`), the chunk of snapshot files it is transforming
(up to :data:`ETL_CHUNK_BYTES` of Arrow, held about :data:`ETL_WORKING_COPIES` times while it is converted, split and
cast), and the group's transformed rows, uncompressed Arrow, until they are sorted and written: about
:data:`ROWS_MEMORY_PER_BYTE` bytes per byte of snapshot file on disk (times the footers' uncompressed-to-compressed
ratio).
"""

from __future__ import annotations

MiB = 1024**2
WORKER_BASE_MEMORY = 300 * MiB  # the interpreter with pyarrow and polars loaded, and allocator slack
ETL_CHUNK_BYTES = 32 * MiB
"""Snapshot files are read until their rows take this much memory, then transformed and split together: a thousand
tiny files cost one transform, not a thousand; a big Parquet file is read a row group at a time."""
ETL_WORKING_COPIES = 4
"""A chunk is held at most about this many times at once while it is transformed, split and converted."""
ROWS_MEMORY_PER_BYTE = 2.0
"""Arrow bytes of transformed rows per uncompressed Parquet byte read (measured: strings and the transform's columns
make Arrow larger than Parquet's uncompressed pages), plus the sort's indices and one row group gathered."""


def etl_rows_budget(memory_per_worker: int) -> int:
    """Bytes of transformed rows an ETL worker keeps in memory before it spills sorted runs to local disk."""
    return max(ETL_CHUNK_BYTES, memory_per_worker - WORKER_BASE_MEMORY - ETL_WORKING_COPIES * ETL_CHUNK_BYTES)
