"""Parquet files joined by copying their row groups' bytes: no decoding, no encoding.

A row group is self-contained: its column chunks (each with its own dictionary page) lie one after the other, and
only the footer says where. Files of one schema are joined by writing the magic, the row groups' bytes one after the
other, and a footer made from the first file's, each row group's offsets moved to where its bytes now are (what
parquet-mr's ``ParquetFileWriter.appendFile`` does). Statistics travel with their row groups. Page indexes and bloom
filters, which live outside the row groups (dbsnaplake writes neither), are left out of a joined file.

The footer is read and written with :mod:`.thrift_compact` (field ids from parquet-format's ``parquet.thrift``).
"""

from __future__ import annotations

import functools
import itertools
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from dbsnaplake import storage
from dbsnaplake.errors import SnapshotError
from dbsnaplake.frames.thrift_compact import I16, I64, TRUE, Field, Struct, decode_struct, encode_struct
from dbsnaplake.records import SortKey

MAGIC = b"PAR1"
TAIL_READ = 64 * 1024
"""Bytes read from a file's end to find its footer (one request for a footer up to this size)."""
COPY_PIECE = 16 * 1024**2
"""Row group bytes are copied this many at a time at most (memory: one piece)."""
JOIN_MIN_ROW_GROUP_SHARE = 1 / 32
"""Files are joined (their row groups copied) only when their row groups average at least this share of the target
file size: lake files of a few big row groups, not thousands of small ones. ETL stages a partition in the lake's
encoding only when its file may be that big; compaction decodes and writes again the rows of smaller ones."""
JOIN_MAX_ROW_GROUP_SHARE = 0.15
"""... and when none is bigger than this share of the target: files are cut between row groups, so a file misses
the target by half a row group at most (ETL writes them an eighth of the target)."""
MAX_ORDINAL = 2**15 - 1
CODECS = {"UNCOMPRESSED": 0, "SNAPPY": 1, "GZIP": 2, "LZO": 3, "BROTLI": 4, "LZ4": 5, "ZSTD": 6, "LZ4_RAW": 7}

# field ids of parquet.thrift
_FILE_SCHEMA, _FILE_NUM_ROWS, _FILE_ROW_GROUPS, _FILE_KEY_VALUES, _FILE_COLUMN_ORDERS = 2, 3, 4, 5, 7
_FILE_ENCRYPTION = (8, 9)
_GROUP_COLUMNS, _GROUP_NUM_ROWS, _GROUP_FILE_OFFSET, _GROUP_ORDINAL = 1, 3, 5, 7
_CHUNK_FILE_OFFSET, _CHUNK_META = 2, 3
_CHUNK_PAGE_INDEX = (4, 5, 6, 7)
_CHUNK_ENCRYPTION = (8, 9)
_META_PATH, _META_CODEC, _META_COMPRESSED_SIZE = 3, 4, 7
_META_DATA_PAGE, _META_INDEX_PAGE, _META_DICTIONARY_PAGE, _META_STATISTICS = 9, 10, 11, 12
_META_BLOOM_FILTER = (14, 15)
_STATS_NULL_COUNT, _STATS_MAX, _STATS_MIN, _STATS_MAX_EXACT, _STATS_MIN_EXACT = 3, 5, 6, 7, 8


@dataclass(frozen=True)
class RowGroupBytes:
    """Where one row group's bytes lie in its file, and its rows."""

    index: int
    start: int
    length: int
    n_record: int


@dataclass(frozen=True)
class Footer:
    """A Parquet file's footer, decoded."""

    uri: str
    size: int
    raw: bytes
    metadata: Struct

    @property
    def _row_groups(self) -> list[Struct]:
        items: list[Struct] = self.metadata[_FILE_ROW_GROUPS].value.items
        return items

    @property
    def n_record(self) -> int:
        return int(self.metadata[_FILE_NUM_ROWS].value)

    def arrow_schema(self) -> pa.Schema:
        """The file's Arrow schema, from the footer alone."""
        stub = MAGIC + self.raw + struct.pack("<I", len(self.raw)) + MAGIC
        return pq.ParquetFile(pa.BufferReader(stub)).schema_arrow

    @functools.cached_property
    def row_groups(self) -> list[RowGroupBytes] | None:
        """Each row group's byte range; ``None`` when one's column chunks do not lie back to back (a writer this
        module does not know) or the file is encrypted."""
        if any(i in self.metadata for i in _FILE_ENCRYPTION):
            return None
        found = []
        for index, group in enumerate(self._row_groups):
            position = start = -1
            for chunk in group[_GROUP_COLUMNS].value.items:
                if any(i in chunk for i in _CHUNK_ENCRYPTION) or _CHUNK_META not in chunk:
                    return None
                meta = chunk[_CHUNK_META].value
                begin = _chunk_start(meta)
                if position >= 0 and begin != position:
                    return None
                start = begin if start < 0 else start
                position = begin + meta[_META_COMPRESSED_SIZE].value
            if start < len(MAGIC) or position > self.size - len(self.raw) - 8:
                return None
            found.append(RowGroupBytes(index, start, position - start, int(group[_GROUP_NUM_ROWS].value)))
        return found

    def codecs(self) -> set[int]:
        return {
            chunk[_CHUNK_META].value[_META_CODEC].value
            for group in self._row_groups
            for chunk in group[_GROUP_COLUMNS].value.items
        }

    def joins_with(self, other: Footer) -> bool:
        """Whether the two files' row groups can make one file: the same schema, version, key-value metadata (the
        Arrow schema) and column orders."""
        fields = (1, _FILE_SCHEMA, _FILE_KEY_VALUES, _FILE_COLUMN_ORDERS)
        return all(self.metadata.get(i) == other.metadata.get(i) for i in fields)

    def key_range(self, column: str, kind: pa.DataType) -> tuple[Any, Any] | None:
        """The least and the greatest value of top-level ``column`` (of Arrow type ``kind``) in the file, from its
        row groups' statistics, comparable as Arrow orders them; ``None`` when they cannot tell: a type whose
        Parquet statistics do not order as Arrow does (floats' NaN, unsigned integers, decimals), nulls (sorted
        last), inexact or missing statistics, no rows."""
        decode = _stat_decoder(kind)
        if decode is None or not self._row_groups:
            return None
        least = greatest = None
        for group in self._row_groups:
            stats = _column_statistics(group, column)
            if stats is None or not _exact_without_nulls(stats):
                return None
            try:
                low, high = decode(stats[_STATS_MIN].value), decode(stats[_STATS_MAX].value)
            except ValueError:
                return None
            least = low if least is None or low < least else least
            greatest = high if greatest is None or high > greatest else greatest
        return least, greatest


def _exact_without_nulls(stats: Struct) -> bool:
    """Whether statistics give their column's exact least and greatest values, and say it holds no null."""
    exact = all(stats.get(i, Field(TRUE, True)).value is not False for i in (_STATS_MIN_EXACT, _STATS_MAX_EXACT))
    no_nulls = _STATS_NULL_COUNT in stats and stats[_STATS_NULL_COUNT].value == 0
    return exact and no_nulls and _STATS_MIN in stats and _STATS_MAX in stats


def _chunk_start(meta: Struct) -> int:
    """Where a column chunk begins: its dictionary page, else its first data page."""
    dictionary = meta.get(_META_DICTIONARY_PAGE)
    if dictionary is not None and dictionary.value > 0:
        return int(dictionary.value)
    return int(meta[_META_DATA_PAGE].value)


def _column_statistics(group: Struct, column: str) -> Struct | None:
    for chunk in group[_GROUP_COLUMNS].value.items:
        meta = chunk[_CHUNK_META].value
        if meta[_META_PATH].value.items == [column.encode()]:
            stats = meta.get(_META_STATISTICS)
            return stats.value if stats is not None else None
    return None


def _stat_decoder(kind: pa.DataType) -> Callable[[bytes], Any] | None:
    """How a statistic's plain-encoded bytes become a value ordered as Arrow orders ``kind``; ``None`` for types
    left to decoding (their order in statistics may differ from Arrow's)."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return bytes  # UTF-8 bytes in byte order: Arrow's order of text
    integral = pa.types.is_signed_integer(kind) or pa.types.is_date32(kind) or pa.types.is_time(kind)
    if not (integral or pa.types.is_timestamp(kind) or pa.types.is_duration(kind)):
        return None
    width = 8 if kind.bit_width == 64 else 4  # Parquet's INT64, or INT32 (which int8 and int16 are stored as)

    def decode(data: bytes) -> Any:
        if len(data) != width:  # INT96 timestamps, or a writer this module does not know
            raise ValueError(f"a {kind} statistic of {len(data)} bytes")
        return int.from_bytes(data, "little", signed=True)

    return decode


def read_footer(uri: str, size: int, source: BinaryIO | None = None) -> Footer:
    """The footer of the Parquet file at ``uri`` (``size`` bytes): one read of its end, two for a big footer (from
    ``source``, when given: the file open already)."""

    def read_range(start: int, length: int) -> bytes:
        if source is None:
            return storage.read_range(uri, start, length)
        source.seek(start)
        return source.read(length)

    tail = read_range(max(0, size - TAIL_READ), min(size, TAIL_READ))
    if size < 12 or tail[-4:] != MAGIC:
        raise SnapshotError(f"{uri} is not a Parquet file (no PAR1 at its end)")
    length = struct.unpack("<I", tail[-8:-4])[0]
    if length + 12 > size:
        raise SnapshotError(f"{uri}: its Parquet footer says {length} bytes, more than the file holds")
    raw = tail[-8 - length : -8] if length + 8 <= len(tail) else read_range(size - 8 - length, length)
    footer = Footer(uri, size, raw, decode_struct(raw))
    try:
        footer.row_groups  # noqa: B018 (found once, and the footer's shape checked)
        footer.codecs()
    except (KeyError, AttributeError, TypeError):
        raise SnapshotError(f"{uri}: its Parquet footer lacks fields every Parquet file has") from None
    return footer


def in_key_order(footers: Sequence[Footer], sort_by: Sequence[SortKey], schema: pa.Schema) -> list[Footer] | None:
    """The files in ``sort_by`` order when their rows, each file sorted already, follow one another without
    overlapping (``None`` when they overlap, or their statistics cannot tell): their row groups, one file after
    the other, are then sorted as a merge would sort them. Several keys: the first key's ranges must not touch."""
    if not sort_by:
        return list(footers)
    key = sort_by[0]
    index = schema.get_field_index(key.column)
    if index < 0:
        return None
    kind = schema.field(index).type
    ranged: list[tuple[tuple[Any, Any], Footer]] = []
    for footer in footers:
        found = footer.key_range(key.column, kind)
        if found is None:
            return None
        ranged.append((found, footer))
    ranged.sort(key=lambda pair: pair[0], reverse=key.descending)
    touching_is_overlap = len(sort_by) > 1  # equal first keys: the next keys would decide the order
    for (before, _), (after, _) in itertools.pairwise(ranged):
        last, first = (before[1], after[0]) if not key.descending else (after[1], before[0])
        if last > first or (touching_is_overlap and last == first):
            return None
    return [footer for _, footer in ranged]


def plan_files(sizes: Sequence[float], target: int, n_files: int | None = None) -> list[int]:
    """How many of the consecutive row groups of ``sizes`` bytes each file takes. A file closes when one more row
    group would take it further from ``target`` than it is, the last file taking what is left: each file misses the
    target by half a row group at most. With ``n_files``, the total is divided evenly among that many files instead:
    file ``k`` ends at the row group boundary nearest to ``k / n_files`` of the total (so errors do not add up)."""
    if not sizes:
        return []
    if n_files:
        return _even_files(sizes, min(n_files, len(sizes)))
    counts: list[int] = []
    size, count = 0.0, 0
    for row_group in sizes:
        if count and abs(size + row_group - target) > abs(size - target):
            counts.append(count)
            size, count = 0.0, 0
        size += row_group
        count += 1
    counts.append(count)
    return counts


def _even_files(sizes: Sequence[float], n_files: int) -> list[int]:
    ends = list(itertools.accumulate(sizes))
    goal = ends[-1] / n_files
    cuts = [0]
    for k in range(1, n_files):
        lowest, highest = cuts[-1] + 1, len(sizes) - (n_files - k)  # a row group at least in every file
        cuts.append(min(range(lowest, highest + 1), key=lambda cut: abs(ends[cut - 1] - k * goal)))
    cuts.append(len(sizes))
    return [after - before for before, after in itertools.pairwise(cuts)]


def write_joined(path: Path, pieces: Sequence[tuple[Footer, RowGroupBytes]]) -> int:
    """Write the row groups ``pieces`` (from files that :meth:`Footer.joins_with` one another) one after the other
    as one Parquet file at local ``path``; return its size. Consecutive row groups of one file are copied in one
    read (one GET on S3), in pieces of at most :data:`COPY_PIECE` bytes."""
    if not pieces:
        raise ValueError("no row groups to join")
    row_groups: list[Struct] = []
    with open(path, "wb") as out:
        out.write(MAGIC)
        for footer, run in _runs(pieces):
            begin, end = run[0].start, run[-1].start + run[-1].length
            _copy_range(footer, begin, end - begin, out)
            shift = out.tell() - end
            row_groups += [_moved(footer, group, shift, len(row_groups) + k) for k, group in enumerate(run)]
        out.write(_footer_with(pieces[0][0], row_groups, sum(group.n_record for _, group in pieces)))
        return out.tell()


def row_group_file(footer: Footer, group: RowGroupBytes, data: bytes) -> bytes:
    """Row group ``group`` of ``footer``'s file (its bytes ``data``) as a Parquet file of its own: for a decoder
    that reads whole files, one row group in memory at a time."""
    moved = _moved(footer, group, len(MAGIC) - group.start, 0)
    return b"".join((MAGIC, data, _footer_with(footer, [moved], group.n_record)))


def _footer_with(footer: Footer, row_groups: list[Struct], n_record: int) -> bytes:
    """A file's end (footer, its length, the magic): ``footer``'s, with ``row_groups`` of ``n_record`` rows."""
    metadata = dict(footer.metadata)
    metadata[_FILE_NUM_ROWS] = Field(I64, n_record)
    rows = metadata[_FILE_ROW_GROUPS]
    metadata[_FILE_ROW_GROUPS] = Field(rows.kind, type(rows.value)(rows.value.element, row_groups))
    raw = encode_struct(metadata)
    return raw + struct.pack("<I", len(raw)) + MAGIC


def _runs(pieces: Sequence[tuple[Footer, RowGroupBytes]]) -> list[tuple[Footer, list[RowGroupBytes]]]:
    """``pieces`` as runs of row groups lying back to back in one file."""
    runs: list[tuple[Footer, list[RowGroupBytes]]] = []
    for footer, group in pieces:
        if runs and runs[-1][0] is footer and runs[-1][1][-1].start + runs[-1][1][-1].length == group.start:
            runs[-1][1].append(group)
        else:
            runs.append((footer, [group]))
    return runs


def _copy_range(footer: Footer, start: int, length: int, out: BinaryIO) -> None:
    with storage.open_for_streaming(footer.uri, footer.size, COPY_PIECE) as source:
        source.seek(start)
        for offset in range(0, length, COPY_PIECE):
            piece = source.read(min(COPY_PIECE, length - offset))
            if not piece:
                raise SnapshotError(f"staging file {footer.uri} ends before its footer says: start over with --fresh")
            out.write(piece)


def _moved(footer: Footer, group: RowGroupBytes, shift: int, ordinal: int) -> Struct:
    """Row group ``group`` of ``footer`` with every offset moved by ``shift`` bytes, numbered ``ordinal``."""
    source = footer._row_groups[group.index]
    moved = dict(source)
    chunks = []
    for chunk in source[_GROUP_COLUMNS].value.items:
        chunk = {i: f for i, f in chunk.items() if i not in _CHUNK_PAGE_INDEX}
        meta = {i: f for i, f in chunk[_CHUNK_META].value.items() if i not in _META_BLOOM_FILTER}
        for i in (_META_DATA_PAGE, _META_INDEX_PAGE, _META_DICTIONARY_PAGE):
            if i in meta and meta[i].value > 0:
                meta[i] = Field(meta[i].kind, meta[i].value + shift)
        chunk[_CHUNK_META] = Field(chunk[_CHUNK_META].kind, meta)
        if _CHUNK_FILE_OFFSET in chunk and chunk[_CHUNK_FILE_OFFSET].value > 0:
            chunk[_CHUNK_FILE_OFFSET] = Field(I64, chunk[_CHUNK_FILE_OFFSET].value + shift)
        chunks.append(chunk)
    columns = source[_GROUP_COLUMNS]
    moved[_GROUP_COLUMNS] = Field(columns.kind, type(columns.value)(columns.value.element, chunks))
    if _GROUP_FILE_OFFSET in moved:
        moved[_GROUP_FILE_OFFSET] = Field(I64, moved[_GROUP_FILE_OFFSET].value + shift)
    if _GROUP_ORDINAL in moved:  # an i16: files of more row groups leave it out
        moved[_GROUP_ORDINAL] = Field(I16, ordinal)
        if ordinal > MAX_ORDINAL:
            del moved[_GROUP_ORDINAL]
    return moved
