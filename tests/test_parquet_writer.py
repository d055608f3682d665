"""RollingParquetWriter: files of about ``target_size`` bytes as written (after compression), every row kept.

The data is random-ish on purpose: ids, small integers, rounded prices and labels drawn from a large but
repetitive vocabulary, so Parquet compresses it moderately (about a quarter of its in-memory size) and the
bytes per row can only be learned by writing.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dbsnaplake.frames.writer import RollingParquetWriter, WrittenFile

MiB = 1024**2
TARGET = 4 * MiB
ROWS = 3_000_000  # ~29 MiB of zstd Parquet: 7 files of 4 MiB and a remainder
BATCH_ROWS = 50_000
WORDS = pa.array(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"])


def make_batch(rng: np.random.Generator, first_id: int, n: int) -> pa.Table:
    label = pc.binary_join_element_wise(
        WORDS.take(pa.array(rng.integers(0, len(WORDS), n))),
        pc.cast(pa.array(rng.integers(0, 100_000, n)), pa.string()),
        "-",
    )
    return pa.table(
        {
            "id": pa.array(np.arange(first_id, first_id + n)),
            "qty": pa.array(rng.integers(0, 1_000, n)),
            "price": pa.array(np.round(rng.normal(100, 30, n), 2)),
            "label": label,
        }
    )


@pytest.fixture(scope="module")
def batches() -> list[pa.Table]:
    rng = np.random.default_rng(20240101)
    return [make_batch(rng, start, min(BATCH_ROWS, ROWS - start)) for start in range(0, ROWS, BATCH_ROWS)]


def bytes_per_row_of(table: pa.Table) -> float:
    """What a caller knows beforehand (the compactor uses the staging files' bytes per row)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=65_536)
    return len(sink.getvalue()) / int(table.num_rows)


def namer(folder: Path) -> Callable[[int], str]:
    return lambda k: str(folder / f"part-{k:05d}.parquet")


def write_all(folder: Path, batches: list[pa.Table], *, balanced: bool, guess: float) -> list[WrittenFile]:
    with RollingParquetWriter(
        namer(folder),
        batches[0].schema,
        target_size=TARGET,
        expected_rows=sum(b.num_rows for b in batches),
        bytes_per_row=guess,
        balanced=balanced,
    ) as writer:
        for batch in batches:
            writer.write(batch)
        return writer.close()


def assert_files_hold_every_row(folder: Path, written: list[WrittenFile], batches: list[pa.Table]) -> None:
    assert sorted(os.listdir(folder)) == [Path(f.uri).name for f in written], "stray or temporary files left"
    ids = []
    for f in written:
        assert os.path.getsize(f.uri) == f.size
        table = pq.read_table(f.uri)
        assert table.num_rows == f.n_record
        assert table.schema == batches[0].schema
        ids.append(table["id"].to_numpy())
    assert np.array_equal(np.concatenate(ids), np.arange(ROWS)), "rows lost, duplicated or reordered"


def sizes_in_mib(written: list[WrittenFile]) -> list[float]:
    return [round(f.size / MiB, 2) for f in written]


@pytest.mark.parametrize("guess_factor", [1.0, 3.0, 1 / 3], ids=["good-guess", "guess-3x-high", "guess-3x-low"])
def test_files_close_near_the_target(tmp_path: Path, batches: list[pa.Table], guess_factor: float) -> None:
    guess = bytes_per_row_of(batches[0]) * guess_factor

    written = write_all(tmp_path, batches, balanced=False, guess=guess)

    assert_files_hold_every_row(tmp_path, written, batches)
    assert len(written) >= 7
    for f in written[:-1]:
        assert 0.9 * TARGET <= f.size <= 1.1 * TARGET, f"{sizes_in_mib(written)} MiB, target 4 MiB"
    assert written[-1].size <= 1.1 * TARGET


def test_balanced_files_are_all_near_the_target(tmp_path: Path, batches: list[pa.Table]) -> None:
    written = write_all(tmp_path, batches, balanced=True, guess=bytes_per_row_of(batches[0]))

    assert_files_hold_every_row(tmp_path, written, batches)
    assert sum(f.size for f in written) >= 5 * TARGET
    for f in written:
        assert 0.9 * TARGET <= f.size <= 1.1 * TARGET, f"{sizes_in_mib(written)} MiB, target 4 MiB"


def test_balanced_files_hold_every_row_without_a_small_remainder(tmp_path: Path, batches: list[pa.Table]) -> None:
    written = write_all(tmp_path, batches, balanced=True, guess=bytes_per_row_of(batches[0]))

    assert_files_hold_every_row(tmp_path, written, batches)
    total = sum(f.size for f in written)
    assert len(written) == round(total / TARGET)
    assert min(f.size for f in written) >= 0.75 * TARGET, f"{sizes_in_mib(written)} MiB"
    assert max(f.size for f in written) <= 1.25 * TARGET, f"{sizes_in_mib(written)} MiB"


def test_a_small_stream_makes_one_file(tmp_path: Path, batches: list[pa.Table]) -> None:
    small = [b.slice(0, 1_000) for b in batches[:3]]
    with RollingParquetWriter(namer(tmp_path), small[0].schema, TARGET, 3_000, 10.0) as writer:
        for batch in small:
            writer.write(batch)
        writer.write(small[0].slice(0, 0))  # empty tables are fine
        written = writer.close()
    assert [f.n_record for f in written] == [3_000]
    assert pq.read_table(written[0].uri).equals(pa.concat_tables(small))


def test_nothing_written_means_no_file(tmp_path: Path, batches: list[pa.Table]) -> None:
    with RollingParquetWriter(namer(tmp_path), batches[0].schema, TARGET, 0, 10.0) as writer:
        assert writer.close() == []
    assert os.listdir(tmp_path) == []


class Boom(Exception):
    pass


def test_an_error_inside_the_with_block_leaves_only_closed_files(tmp_path: Path, batches: list[pa.Table]) -> None:
    rows_sent = 0
    with (
        pytest.raises(Boom),
        RollingParquetWriter(
            namer(tmp_path),
            batches[0].schema,
            target_size=TARGET,
            expected_rows=ROWS,
            bytes_per_row=bytes_per_row_of(batches[0]),
        ) as writer,
    ):
        for batch in batches[: len(batches) // 2]:  # ~3.6 files' worth: three closed, one open
            writer.write(batch)
            rows_sent += batch.num_rows
        raise Boom("the merge failed half way")

    names = sorted(os.listdir(tmp_path))  # hidden temporary files included
    assert len(names) >= 2 and names == [f"part-{k:05d}.parquet" for k in range(len(names))], names
    ids = np.concatenate([pq.read_table(tmp_path / n)["id"].to_numpy() for n in names])
    assert np.array_equal(ids, np.arange(len(ids))), "closed files must be complete and in order"
    assert 0 < len(ids) < rows_sent
    for name in names:
        assert 0.9 * TARGET <= (tmp_path / name).stat().st_size <= 1.1 * TARGET
