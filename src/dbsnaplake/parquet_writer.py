"""A Parquet writer that rolls over to a new file at a target size measured in bytes actually written.

Sizing by in-memory bytes gives files several times smaller than asked (Parquet compresses). Instead each
row group is written, the file's real size is read back, and the rows of the next row group are chosen from
the bytes per row written so far, so the file closes close to its target. With ``balanced`` the group's
output is split into ``round(estimated bytes / target)`` files of equal size (no small remainder file);
otherwise every file is filled to the target and the last one holds the remainder.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import storage

MAX_ROW_GROUP_ROWS = 1_048_576
MAX_ROW_GROUP_MEMORY = 256 * 1024**2
CLOSE_TOLERANCE = 0.01  # close a file once less than 1 % of its target is left


@dataclass(frozen=True)
class WrittenFile:
    uri: str
    size: int
    n_record: int


class _OpenFile:
    def __init__(self, uri: str, schema: pa.Schema, compression: str, target: float) -> None:
        self.uri = uri
        self.target = target
        self._stack = contextlib.ExitStack()
        self.path: Path = self._stack.enter_context(storage.atomic_output(uri))
        self.sink = pa.OSFile(str(self.path), "wb")
        self.writer = pq.ParquetWriter(self.sink, schema, compression=compression)
        self.rows = 0

    @property
    def bytes(self) -> int:
        return int(self.sink.tell())

    def close(self) -> WrittenFile:
        self.writer.close()
        self.sink.close()
        size = self.path.stat().st_size
        self._stack.close()  # publishes the file
        return WrittenFile(self.uri, size, self.rows)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        self.sink.close()
        self._stack.pop_all()  # never publish
        self.path.unlink(missing_ok=True)


class RollingParquetWriter:
    """Write a stream of tables into files of about ``target_size`` bytes each.

    ``uri_for(k)`` names the k-th file (0-based). ``expected_rows`` is the number of rows that will be written
    in all (known from the manifests); ``bytes_per_row`` is a first guess used until bytes have been written.
    """

    def __init__(
        self,
        uri_for: Callable[[int], str],
        schema: pa.Schema,
        target_size: int,
        expected_rows: int,
        bytes_per_row: float,
        *,
        balanced: bool = False,
        compression: str = "zstd",
    ) -> None:
        self._uri_for = uri_for
        self._schema = schema
        self._target = target_size
        self._expected_rows = expected_rows
        self._guess_bpr = max(bytes_per_row, 1e-3)
        self._balanced = balanced
        self._compression = compression
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._memory_bpr = 0.0
        self._file: _OpenFile | None = None
        self._written: list[WrittenFile] = []
        self._rows_done = 0
        self._bytes_done = 0

    # -- estimates ----------------------------------------------------------------------------------------
    def _bytes_per_row(self) -> float:
        rows = self._rows_done + (self._file.rows if self._file else 0)
        written = self._bytes_done + (self._file.bytes if self._file else 0)
        if self._file and self._file.rows:
            return self._file.bytes / self._file.rows
        return written / rows if rows else self._guess_bpr

    def _measured(self) -> bool:
        return self._rows_done > 0 or bool(self._file and self._file.rows)

    def _next_file_target(self) -> float:
        if not self._balanced:
            return float(self._target)
        remaining = max(0, self._expected_rows - self._rows_done) * self._bytes_per_row()
        files_left = max(1, round(remaining / self._target))
        return remaining / files_left

    def _rows_for_next_row_group(self, file: _OpenFile) -> int:
        bpr = self._bytes_per_row()
        rows_left = max(1, math.ceil((file.target - file.bytes) / bpr))
        if not self._measured():
            rows_left = max(1, rows_left // 4)  # a small first row group, to measure the real bytes per row
        by_memory = int(MAX_ROW_GROUP_MEMORY / self._memory_bpr) if self._memory_bpr else MAX_ROW_GROUP_ROWS
        return max(1, min(rows_left, MAX_ROW_GROUP_ROWS, by_memory))

    # -- writing ------------------------------------------------------------------------------------------
    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if not self._memory_bpr:
            self._memory_bpr = max(1.0, table.nbytes / table.num_rows)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows and self._pending_rows >= self._rows_for_next_row_group(self._ensure_file()):
            self._flush_row_group()

    def _ensure_file(self) -> _OpenFile:
        if self._file is None:
            self._file = _OpenFile(
                self._uri_for(len(self._written)), self._schema, self._compression, self._next_file_target()
            )
        return self._file

    def _flush_row_group(self) -> None:
        file = self._ensure_file()
        n = min(self._pending_rows, self._rows_for_next_row_group(file))
        pending = pa.concat_tables(self._pending)
        file.writer.write_table(pending.slice(0, n), row_group_size=n)
        file.rows += n
        rest = pending.slice(n)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        if file.bytes >= file.target * (1 - CLOSE_TOLERANCE):
            self._close_file()

    def _close_file(self) -> None:
        assert self._file is not None
        done = self._file.close()
        self._file = None
        self._written.append(done)
        self._rows_done += done.n_record
        self._bytes_done += done.size

    def close(self) -> list[WrittenFile]:
        """Write what is buffered, close the last file and return every file written."""
        while self._pending_rows:
            self._flush_row_group()
        if self._file is not None:
            self._close_file()
        return list(self._written)

    def abort(self) -> None:
        """Discard the file being written (files already closed stay published)."""
        if self._file is not None:
            self._file.abort()
            self._file = None

    def __enter__(self) -> RollingParquetWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()
