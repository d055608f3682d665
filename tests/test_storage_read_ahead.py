"""Reading S3 objects in order with ``read_ahead``: the same bytes, one GET per file read through (against the moto
server), and a response broken off midway is asked for again."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
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
    """Counts the GETs made (ranged and streamed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        for name in ("get", "get_range"):
            monkeypatch.setattr(obstore, name, self._counted(getattr(obstore, name)))

    def _counted(self, real: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        return counted


def read_in_order(uri: str, read_ahead: int, step: int, streamed: bool = True) -> bytes:
    with storage.open_input_file(uri, len(OBJECT), read_ahead, streamed) as f:
        return b"".join(iter(lambda: f.read(step), b""))


def test_reading_in_order_with_read_ahead_gets_the_same_bytes_in_few_requests(
    s3_object: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gets = _CountedGets(monkeypatch)
    assert read_in_order(s3_object, 0, 64 * 1024) == OBJECT
    assert gets.calls == 48  # one GET per read
    gets.calls = 0
    assert read_in_order(s3_object, 1024**2, 64 * 1024, streamed=False) == OBJECT
    assert gets.calls == 3  # ranged GETs: one per MiB read ahead
    gets.calls = 0
    assert read_in_order(s3_object, 1024**2, 5 * 1024**2, streamed=False) == OBJECT  # bigger reads: as asked
    assert gets.calls == 1
    gets.calls = 0
    assert read_in_order(s3_object, 1024**2, 64 * 1024) == OBJECT
    assert gets.calls == 1  # one streamed GET, taken a MiB at a time
    gets.calls = 0
    assert read_in_order(s3_object, 1024**2, 5 * 1024**2) == OBJECT
    assert gets.calls == 1


def test_reads_that_skip_a_little_stay_on_one_get_and_reads_behind_or_far_ahead_open_another(
    s3_object: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gets = _CountedGets(monkeypatch)
    with storage.open_input_file(s3_object, len(OBJECT), 256 * 1024, streamed=True) as f:
        assert f.read(1000) == OBJECT[:1000]
        f.seek(200_000)  # within the read-ahead of what came: read on from the same response
        assert f.read(1000) == OBJECT[200_000:201_000]
        assert f.read(700_000) == OBJECT[201_000:901_000]
        assert gets.calls == 1
        f.seek(100)  # behind the bytes held: another GET
        assert f.read(10) == OBJECT[100:110]
        assert gets.calls == 2
        f.seek(2 * 1024**2)  # far ahead: another GET
        assert f.read(10) == OBJECT[2 * 1024**2 : 2 * 1024**2 + 10]
        assert gets.calls == 3


def test_a_response_broken_off_midway_is_asked_for_again_from_the_next_byte(
    s3_object: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream's connection fails after each chunk (as a dropped connection or a timed-out request would): the
    read asks for the rest again, from the byte it needs, and gets the object's bytes."""
    real_get = obstore.get
    opened: list[int] = []

    chunks_before_breaking = 1

    class BreaksOff:
        def __init__(self, result: Any) -> None:
            self.result = result
            self.meta = result.meta

        def stream(self, min_chunk_size: int) -> Iterator[bytes]:
            chunks = iter(self.result.stream(min_chunk_size=min_chunk_size))
            for _ in range(chunks_before_breaking):
                yield next(chunks)
            raise RuntimeError("connection reset by peer")

    def breaking_get(*args: Any, **kwargs: Any) -> Any:
        opened.append(kwargs["options"]["range"]["offset"])
        return BreaksOff(real_get(*args, **kwargs))

    monkeypatch.setattr(obstore, "get", breaking_get)
    monkeypatch.setattr("dbsnaplake.storage.s3.STREAM_REOPENS", 10)
    assert read_in_order(s3_object, 1024**2, 64 * 1024) == OBJECT
    assert opened[0] == 0 and len(opened) >= 3 and opened == sorted(set(opened))  # each time from the next byte
    chunks_before_breaking = 0  # a response that breaks off at once, every time: the read fails after the reopens
    opened.clear()
    with pytest.raises(storage.StorageError, match="connection reset"):
        read_in_order(s3_object, 1024**2, 64 * 1024)
    assert opened == [0] * 11


def test_a_streamed_read_refuses_bytes_of_an_object_replaced_midway(s3_server: str) -> None:
    """The response broken off, the rest is asked for of the same version: an object replaced meanwhile fails the
    read (If-Match), never a file stitched from two versions."""
    uri = f"s3://{S3_BUCKET}/read-ahead/replaced.bin"
    storage.write_bytes(uri, OBJECT)
    with storage.open_input_file(uri, len(OBJECT), 64 * 1024, streamed=True) as f:
        assert f.read(10) == OBJECT[:10]
        storage.write_bytes(uri, OBJECT[::-1])
        f.seek(2 * 1024**2)  # far ahead: a new GET, which must be of the version read so far
        with pytest.raises((storage.StorageError, OSError)):
            f.read(10)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.integers(0, len(OBJECT) + 10), st.integers(0, 300_000)), min_size=1, max_size=12),
    st.booleans(),
)
def test_reads_anywhere_with_read_ahead_get_the_object_s_bytes(
    s3_object: str, reads: list[tuple[int, int]], streamed: bool
) -> None:
    with storage.open_input_file(s3_object, len(OBJECT), 256 * 1024, streamed) as f:
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
        for mapped, streamed in itertools.product((True, False), repeat=2):
            got = pa.concat_tables(iter_staging_file(uri, size, table.schema, 4_096, mapped, read_ahead, streamed))
            assert got.equals(table)
    read = read_back(uri, size)  # on S3, one streamed GET
    assert (read.n_record, read.rows_fingerprint, read.error) == (table.num_rows, fingerprint(table), None)


def test_files_below_the_multipart_size_go_up_in_one_put_and_bigger_ones_in_parts(
    s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server says which: a multipart object's ETag ends with its count of parts."""
    monkeypatch.setattr("dbsnaplake.storage.s3.MULTIPART_FROM", 2 * 1024**2)
    monkeypatch.setattr("dbsnaplake.storage.s3.MULTIPART_PART", 5 * 1024**2)
    small, big = OBJECT[: 2 * 1024**2 - 1], OBJECT * 4  # 2 MiB - 1; 12 MiB: three parts
    etags = {}
    for name, data in (("small.bin", small), ("big.bin", big)):
        uri = f"s3://{S3_BUCKET}/uploads/{name}"
        storage.write_bytes(uri, data)
        assert storage.read_bytes(uri) == data
        etags[name] = storage.head(uri).etag or ""
    assert "-" not in etags["small.bin"] and etags["big.bin"].endswith("-3")


def test_uploads_sign_their_payload_over_plain_http_to_another_machine_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over HTTPS (AWS's own endpoint too) TLS protects the body and no SHA-256 of it is made, nor to a server on
    this machine (no network in between); over plain HTTP to another machine the signature covers the body's hash."""
    from dbsnaplake.storage.s3 import _s3_store, forget_stores

    cases = (
        ("", True),
        ("https://s3.example.com", True),
        ("http://127.0.0.1:9000", True),
        ("http://localhost:9000", True),
        ("http://[::1]:9000", True),
        ("http://10.0.0.5:9000", False),
        ("http://minio.internal:9000", False),
    )
    for endpoint, unsigned in cases:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        forget_stores()
        assert (_s3_store("any-bucket").config.get("unsigned_payload") == "true") is unsigned, endpoint
    forget_stores()
