"""Reading S3 objects in order with ``read_ahead``: the same bytes, far fewer GETs (against the moto server)."""

from __future__ import annotations

import io
from typing import Any

import obstore
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbsnaplake import storage
from dbsnaplake.frames.fingerprint import fingerprint
from dbsnaplake.stages.compact import iter_staging_file
from dbsnaplake.stages.validate import read_back

from .support.snapshots import S3_BUCKET

OBJECT = bytes(range(256)) * 12_288  # 3 MiB, every offset's byte known


@pytest.fixture(scope="module")
def s3_object(s3_server: str) -> str:
    uri = f"s3://{S3_BUCKET}/read-ahead/object.bin"
    storage.write_bytes(uri, OBJECT)
    return uri


class _CountedGets:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = obstore.get_range

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(obstore, "get_range", counted)


def read_in_order(uri: str, read_ahead: int, step: int) -> bytes:
    with storage.open_input_file(uri, len(OBJECT), read_ahead) as f:
        return b"".join(iter(lambda: f.read(step), b""))


def test_reading_in_order_with_read_ahead_gets_the_same_bytes_in_few_requests(
    s3_object: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gets = _CountedGets(monkeypatch)
    assert read_in_order(s3_object, 0, 64 * 1024) == OBJECT
    assert gets.calls == 48  # one GET per read
    gets.calls = 0
    assert read_in_order(s3_object, 1024**2, 64 * 1024) == OBJECT
    assert gets.calls == 3  # one per MiB read ahead
    gets.calls = 0
    assert read_in_order(s3_object, 1024**2, 5 * 1024**2) == OBJECT  # reads bigger than the read-ahead: as asked
    assert gets.calls == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(OBJECT) + 10), st.integers(0, 300_000)), min_size=1, max_size=12))
def test_reads_anywhere_with_read_ahead_get_the_object_s_bytes(s3_object: str, reads: list[tuple[int, int]]) -> None:
    with storage.open_input_file(s3_object, len(OBJECT), 256 * 1024) as f:
        for position, size in reads:
            f.seek(position)
            assert f.read(size) == OBJECT[position : position + size]


def test_a_staging_file_streamed_from_s3_with_read_ahead_is_the_same_rows(s3_server: str) -> None:
    """Compaction's merge and the read-back read S3 files in order with read-ahead: the same rows, fingerprints."""
    table = pa.table({"id": range(50_000), "text": [f"row {i}" for i in range(50_000)]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=4_096, compression="none")
    uri = f"s3://{S3_BUCKET}/read-ahead/staging.parquet"
    storage.write_bytes(uri, buffer.getvalue())
    size = len(buffer.getvalue())
    for read_ahead in (0, 64 * 1024, storage.STREAM_READ_AHEAD):
        for mapped in (True, False):
            got = pa.concat_tables(iter_staging_file(uri, size, table.schema, 4_096, mapped, read_ahead))
            assert got.equals(table)
    read = read_back(uri, size)  # on S3, read ahead
    assert (read.n_record, read.rows_fingerprint, read.error) == (table.num_rows, fingerprint(table), None)
