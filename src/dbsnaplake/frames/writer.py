"""A Parquet writer that rolls over to a new file at a target size measured in bytes actually written.

Sizing by in-memory bytes gives files several times smaller than asked (Parquet compresses). Instead each
row group is written, the file's real size is read back, and the rows of the next row group are chosen from
the bytes per row written so far, so the file closes close to its target; the last file holds the remainder.

With ``balanced`` the output is instead split into files of equal size, with no small remainder. The first
file is filled to the target by bytes; its bytes per row (measured on its full-size row groups) then fix the
number of files the remaining rows make, ``round(remaining bytes / target)``, and those rows are divided
evenly among them. Splitting by rows spreads any error of the estimate over every file instead of piling it
into the last one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.records import WrittenFile

MAX_ROW_GROUP_ROWS = 1_048_576
MAX_ROW_GROUP_MEMORY = 256 * 1024**2
ROW_GROUPS_PER_FILE = 8
"""Row groups of about an eighth of the target: the first one measures the bytes per row, and every row group
is about the same size, so they all compress alike."""
CLOSE_TOLERANCE = 0.01  # close a file once less than 1 % of its target is left


DICTIONARY_MAX_DISTINCT_SHARE = 0.05
"""Dictionary-encode a column only when its sample has at most 5 % distinct values. Parquet's default
(dictionary for every column, falling back when the dictionary grows too big) spent a third of the write time
on ids and free text here, and made the files bigger."""


DICTIONARY_SAMPLE_ROWS = 10_000


def dictionary_columns(sample: pa.Table) -> list[str]:
    """The columns of ``sample`` with few distinct values, worth dictionary encoding."""
    sample = sample.slice(0, DICTIONARY_SAMPLE_ROWS)
    if not sample.num_rows:
        return []
    limit = max(1, int(sample.num_rows * DICTIONARY_MAX_DISTINCT_SHARE))
    chosen = []
    for name, column in zip(sample.column_names, sample.columns, strict=True):
        if pa.types.is_nested(column.type) or pa.types.is_null(column.type):  # no count_distinct kernel for null
            continue
        if pc.count_distinct(column, mode="all").as_py() <= limit:
            chosen.append(name)
    return chosen


def open_parquet_writer(
    sink: str | Path | pa.NativeFile,
    sample: pa.Table,
    compression: str,
    statistics: bool = True,
    dictionary: list[str] | None = None,
) -> pq.ParquetWriter:
    """A ParquetWriter for tables like ``sample``, dictionary-encoding only its low-cardinality columns (chosen from
    ``sample``, or given as ``dictionary`` by a caller writing many files alike). ``statistics=False`` leaves out
    the column statistics (min/max/nulls: a fifth of the encoding time, a quarter of the decoding) for files
    nothing queries, such as staging files compaction reads in full."""
    return pq.ParquetWriter(
        sink,
        sample.schema,
        compression=compression,
        use_dictionary=dictionary_columns(sample) if dictionary is None else dictionary,
        write_statistics=statistics,
    )


class _OpenFile:
    def __init__(self, uri: str, sample: pa.Table, compression: str) -> None:
        self.uri = uri
        self._stack = contextlib.ExitStack()
        # made durable with the group's other files, before its done-marker
        self.path: Path = self._stack.enter_context(storage.atomic_output(uri, durable=False))
        self.sink = pa.OSFile(str(self.path), "wb")
        self.writer = open_parquet_writer(self.sink, sample, compression)
        self.rows = 0
        self.first_row_group: tuple[int, int] | None = None
        """(rows, bytes) of the first row group, sized from a guess of the bytes per row."""

    @property
    def bytes(self) -> int:
        return int(self.sink.tell())

    def steady_bytes_per_row(self) -> float:
        """Bytes per row of the row groups after the first (which was sized from a guess)."""
        first_rows, first_bytes = self.first_row_group or (0, 0)
        if self.rows > first_rows:
            return (self.bytes - first_bytes) / (self.rows - first_rows)
        return self.bytes / max(1, self.rows)

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
    ``max_row_group_memory`` caps the bytes in memory of the rows buffered for one row group. ``published`` is
    told of each file as soon as it is published (closed and in place).
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
        max_row_group_memory: int = MAX_ROW_GROUP_MEMORY,
        published: Callable[[WrittenFile], None] | None = None,
    ) -> None:
        self._uri_for = uri_for
        self._published = published
        self._schema = schema
        self._target = target_size
        self._expected_rows = expected_rows
        self._guess_bpr = max(bytes_per_row, 1e-3)
        self._balanced = balanced and expected_rows > 0
        self._rows_per_file: list[int] | None = None
        """Balanced mode: the rows of each file after the first, fixed when the first file closes."""
        self._compression = compression
        self._max_row_group_memory = max(1, max_row_group_memory)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._memory_bpr = 0.0
        self._file: _OpenFile | None = None
        self._written: list[WrittenFile] = []
        self._rows_done = 0
        self._bytes_done = 0
        self._footer_bytes = 0
        """Size of the last closed file's footer: the rest of a file is sized to leave room for it."""

    # -- estimates ----------------------------------------------------------------------------------------
    def _bytes_per_row(self) -> float:
        if self._file and self._file.rows:
            return self._file.bytes / self._file.rows
        return self._bytes_done / self._rows_done if self._rows_done else self._guess_bpr

    def _plan_balanced_files(self, first_file_rows: int, bytes_per_row: float) -> None:
        rows_left = max(0, self._expected_rows - first_file_rows)
        data_per_file = self._target - self._footer_bytes
        n_files = max(1, round(rows_left * bytes_per_row / data_per_file))
        base, extra = divmod(rows_left, n_files)
        self._rows_per_file = [base + (k < extra) for k in range(n_files)]

    def _planned_rows(self) -> int | None:
        """Balanced mode: the rows the open file must hold; ``None`` when it is sized by bytes, or is the plan's
        last file (which takes whatever is left, should more rows come)."""
        plan = self._rows_per_file
        index = len(self._written) - 1  # the plan covers the files after the first
        if plan is None or index >= len(plan) - 1:
            return None
        return plan[index]

    def _rows_left_in_file(self, file: _OpenFile) -> int:
        """How many more rows the open file takes before it closes."""
        planned = self._planned_rows()
        if planned is not None:
            return planned - file.rows
        if self._rows_per_file is not None:
            return MAX_ROW_GROUP_ROWS  # the plan's last file: no limit
        return max(1, math.ceil((self._target - self._footer_bytes - file.bytes) / self._bytes_per_row()))

    def _rows_for_next_row_group(self, file: _OpenFile) -> int:
        by_memory = int(self._max_row_group_memory / self._memory_bpr) if self._memory_bpr else MAX_ROW_GROUP_ROWS
        by_size = math.ceil(self._target / ROW_GROUPS_PER_FILE / self._bytes_per_row())
        return max(1, min(self._rows_left_in_file(file), MAX_ROW_GROUP_ROWS, by_memory, by_size))

    def _file_is_full(self, file: _OpenFile) -> bool:
        if self._rows_per_file is not None:
            planned = self._planned_rows()
            return planned is not None and file.rows >= planned
        return file.bytes + self._footer_bytes >= self._target * (1 - CLOSE_TOLERANCE)

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
            uri = self._uri_for(len(self._written))
            sample = self._pending[0] if self._pending else self._schema.empty_table()
            self._file = _OpenFile(uri, sample, self._compression)
        return self._file

    def _flush_row_group(self) -> None:
        file = self._ensure_file()
        n = min(self._pending_rows, self._rows_for_next_row_group(file))
        pending = pa.concat_tables(self._pending)
        file.writer.write_table(pending.slice(0, n), row_group_size=n)
        file.rows += n
        if file.first_row_group is None:
            file.first_row_group = (file.rows, file.bytes)
        rest = pending.slice(n)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        if self._file_is_full(file):
            self._close_file()

    def _close_file(self) -> None:
        file, self._file = self._file, None
        assert file is not None
        data_bytes, bytes_per_row = file.bytes, file.steady_bytes_per_row()
        done = file.close()
        self._footer_bytes = done.size - data_bytes
        self._written.append(done)
        if self._published is not None:
            self._published(done)
        self._rows_done += done.n_record
        self._bytes_done += data_bytes
        if self._balanced and self._rows_per_file is None:
            self._plan_balanced_files(done.n_record, bytes_per_row)

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
