"""How much memory the ETL stage needs: one model shared by the planner (which sizes groups to fit
``--worker-memory``) and the ETL stage (which spills sorted runs to local disk should a group not fit after all).

An ETL worker holds the interpreter (:data:`WORKER_BASE_MEMORY`), the chunk of snapshot files it is transforming
(up to :data:`ETL_CHUNK_BYTES` of Arrow, held about :data:`ETL_WORKING_COPIES` times while it is converted, split and
cast, and the next file read ahead), and the group's transformed rows, uncompressed Arrow, until they are sorted and written: about
:data:`ROWS_MEMORY_PER_BYTE` bytes per uncompressed byte of snapshot file (its size on disk times the footers'
uncompressed-to-compressed ratio).
"""

from __future__ import annotations

import os

MiB = 1024**2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
WORKER_BASE_MEMORY = 300 * MiB  # the interpreter with pyarrow and polars loaded, and allocator slack
ETL_CHUNK_BYTES = 32 * MiB
"""Snapshot files are read until their rows take this much memory, then transformed and split together: a thousand
tiny files cost one transform, not a thousand; a big Parquet file is read in slices of a few MiB."""
ETL_WORKING_COPIES = 5
"""A chunk is held at most about this many times at once while it is transformed, split and converted (4), plus the
next file, read ahead on a thread meanwhile (1)."""
ROWS_MEMORY_PER_BYTE = 4.0
"""Worker memory per uncompressed Parquet byte of a group (the footers' sizes), measured: its transformed rows are
about twice as big in Arrow (strings, the transform's columns), and the allocators (Polars' and Arrow's) hold about
as much again; the sort's indices and the gathered quarter of a partition fit in the rest."""


ROWS_ARROW_PER_BYTE = 2.0
"""Arrow bytes of transformed rows per uncompressed Parquet byte read (part of :data:`ROWS_MEMORY_PER_BYTE`)."""


GROUP_SCOPE_COPIES = 4
"""With ``--transform-scope group`` the whole group is one chunk: read, converted, transformed and split, it is held
about this many times more (in Arrow bytes per uncompressed byte, like the rows), besides its rows until sorted."""


def etl_memory_per_byte(transform_scope: str) -> float:
    """Worker memory per uncompressed snapshot byte of an ETL group (the planner's model)."""
    if transform_scope == "group":
        return ROWS_MEMORY_PER_BYTE + GROUP_SCOPE_COPIES * ROWS_ARROW_PER_BYTE
    return ROWS_MEMORY_PER_BYTE


def etl_working_memory(transform_scope: str) -> int:
    """Worker memory an ETL group needs whatever its size: the interpreter, and a chunk being transformed (in group
    scope the chunk is the group, counted per byte by :func:`etl_memory_per_byte`)."""
    chunks = 0 if transform_scope == "group" else ETL_WORKING_COPIES * ETL_CHUNK_BYTES
    return WORKER_BASE_MEMORY + chunks


def etl_rows_budget(memory_per_worker: int) -> int:
    """Arrow bytes of transformed rows an ETL worker keeps in memory before it spills sorted runs to local disk."""
    free = memory_per_worker - etl_working_memory("chunk")
    return max(ETL_CHUNK_BYTES, int(free * ROWS_ARROW_PER_BYTE / ROWS_MEMORY_PER_BYTE))


RSS_SPILL_SHARE = 0.6
"""An ETL worker also spills when its resident memory passes this share of ``--worker-memory``, whatever the model
says: the allocators (Arrow's and Polars') keep memory the model does not see. The rest is for the spill itself (a
column copied, the sort's indices, a quarter of the rows gathered). Measured: one 2 GiB Parquet file of
million-row row groups under ``--worker-memory 1GB``: 1.74 GiB on the model alone, 1,041 MiB at 0.7, 1,008 MiB at 0.6."""


def resident_memory() -> int:
    """This process's resident memory in bytes (0 where ``/proc`` is not there to tell)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0
