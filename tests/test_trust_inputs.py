"""A lake you can trust: inputs are never reshaped silently, one run owns a staging area, nothing is written before
every check passed (the snapshot folder never), empty is normal, and the Python API is safe from a script.

Each test runs the real command (or a user's script) and looks at the exit code, the one-line message and what is
left on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbsnaplake import storage
from dbsnaplake.storage import StorageError

from .support.cli import dbsnaplake
from .support.snapshots import write_parquet


def last_line(stderr: str) -> str:
    return " ".join(stderr.strip().splitlines()[-1].split()) if stderr.strip() else ""


def assert_refused(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 1, result.stderr + result.stdout
    message = last_line(result.stderr)
    assert message.startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def listing(folder: str) -> dict[str, int]:
    return {i.uri: i.size for i in storage.list_files(folder)}


def lake_parquet(datalake: str) -> list[str]:
    return sorted(i.uri for i in storage.list_files(datalake) if i.uri.endswith(".parquet"))


def read_lake(datalake: str) -> pl.DataFrame:
    """The lake as DuckDB reads it: hive partitioning on, as a user's query would."""
    files = lake_parquet(datalake)
    assert files, f"no Parquet file in {datalake}"
    return duckdb.sql(f"SELECT * FROM read_parquet({files!r}, hive_partitioning = true)").pl()


def orders(first_id: int, n: int) -> pa.Table:
    return pa.table({"id": list(range(first_id, first_id + n)), "amount": [float(i) for i in range(n)]})


def parquet_folder(root: Path, name: str, tables: dict[str, pa.Table]) -> str:
    folder = root / name
    for relative, table in tables.items():
        write_parquet(str(folder / relative), table)
    return str(folder)


def run_source(source: str, staging: str, datalake: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return dbsnaplake(
        "run", "--source", source, "--staging", staging, "--datalake", datalake, "--executor", "inline", *extra
    )


# ---- (b) staging inside the snapshot folder: refused before anything is written -----------------------------


def test_staging_inside_the_source_folder_is_refused_and_the_snapshot_folder_is_left_unchanged(
    tmp_path: Path,
) -> None:
    source = parquet_folder(tmp_path, "snap", {f"part-{i}.parquet": orders(i * 10, 10) for i in range(4)})
    before = listing(source)
    result = run_source(source, f"{source}/_staging/", str(tmp_path / "lake"))
    assert_refused(result, "--staging", "snapshot")
    assert listing(source) == before
    assert not (tmp_path / "snap" / "_staging").exists()
    assert not (tmp_path / "lake").exists()


def test_datalake_inside_the_source_folder_is_refused_before_any_write(tmp_path: Path) -> None:
    source = parquet_folder(tmp_path, "snap", {"part-0.parquet": orders(0, 10)})
    before = listing(source)
    assert_refused(run_source(source, str(tmp_path / "staging"), f"{source}/lake/"), "--datalake", "snapshot")
    assert listing(source) == before
    assert not (tmp_path / "staging").exists()


def test_staging_beside_snapshot_folders_is_judged_by_where_the_files_are(tmp_path: Path) -> None:
    """Files in root/a/ and root/b/ share the parent root/: a staging folder root/staging/ holds no snapshot file
    and is inside no folder that does."""
    parquet_folder(tmp_path, "a", {"part-0.parquet": orders(0, 10)})
    parquet_folder(tmp_path, "b", {"part-0.parquet": orders(10, 10)})
    manifest = str(tmp_path / "manifests" / "manifest-summary.json")
    from dbsnaplake.api import write_manifest
    from dbsnaplake.manifest import files_table

    uris = [str(tmp_path / "a" / "part-0.parquet"), str(tmp_path / "b" / "part-0.parquet")]
    write_manifest(manifest, files_table(uris, [os.path.getsize(u) for u in uris], [10, 10]))
    staging, lake = str(tmp_path / "staging"), str(tmp_path / "lake")
    result = dbsnaplake("run", "--manifest", manifest, "--staging", staging, "--datalake", lake, "--executor", "inline")
    assert result.returncode == 0, result.stderr
    assert read_lake(lake).height == 20


# ---- (c) two runs on one staging area ---------------------------------------------------------------------


@pytest.mark.slow
def test_two_source_runs_on_one_staging_area_never_mix_snapshots(tmp_path: Path) -> None:
    first = parquet_folder(tmp_path, "first", {f"p-{i}.parquet": orders(i * 1000, 1000) for i in range(6)})
    second = parquet_folder(tmp_path, "second", {f"p-{i}.parquet": orders(100_000 + i * 100, 100) for i in range(4)})
    staging = str(tmp_path / "staging")
    lakes = {first: str(tmp_path / "lake-first"), second: str(tmp_path / "lake-second")}
    exe = Path(sys.executable).with_name("dbsnaplake")
    processes = {}
    for source in (first, second):
        command = [str(exe), "run", "--source", source, "--staging", staging, "--datalake", lakes[source]]
        processes[source] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
    outcomes = {source: (p.wait(timeout=600), p.stderr.read() if p.stderr else "") for source, p in processes.items()}
    for source, (code, stderr) in outcomes.items():
        expected = pq.ParquetDataset(source).read().sort_by("id")
        if code == 0:
            lake = read_lake(lakes[source]).sort("id")
            assert lake["id"].to_list() == expected["id"].to_pylist(), f"the lake of {source} holds other rows"
        else:
            assert "another dbsnaplake run" in last_line(stderr), stderr
            assert not lake_parquet(lakes[source]) if os.path.exists(lakes[source]) else True
    assert any(code == 0 for code, _ in outcomes.values())


# ---- (d) CSV headers decided per file ------------------------------------------------------------------------


def test_csv_files_after_the_first_without_a_header_row_keep_every_row(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "a.csv").write_text("id,name\n1,ann\n2,bob\n")
    (folder / "b.csv").write_text("3,cid\n4,dan\n")
    (folder / "c.csv").write_text("id,name\n5,eve\n")
    result = run_source(str(folder), str(tmp_path / "staging"), str(tmp_path / "lake"))
    assert result.returncode == 0, result.stderr
    lake = read_lake(str(tmp_path / "lake")).sort("id")
    assert lake.columns == ["id", "name"]
    assert lake["id"].to_list() == [1, 2, 3, 4, 5]
    assert lake["name"].to_list() == ["ann", "bob", "cid", "dan", "eve"]


# ---- inputs never reshaped ------------------------------------------------------------------------------------


def test_a_hive_partitioned_source_folder_keeps_its_partition_columns(tmp_path: Path) -> None:
    source = parquet_folder(
        tmp_path,
        "spark",
        {
            "region=eu/year=2024/part-0.parquet": orders(0, 5),
            "region=us/year=2024/part-0.parquet": orders(5, 3),
            "region=us/year=2025/part-0.parquet": orders(8, 2),
        },
    )
    result = run_source(source, str(tmp_path / "staging"), str(tmp_path / "lake"))
    assert result.returncode == 0, result.stderr
    lake = read_lake(str(tmp_path / "lake")).sort("id")
    assert lake["region"].to_list() == ["eu"] * 5 + ["us"] * 5
    assert lake["year"].to_list() == [2024] * 8 + [2025] * 2
    assert lake.schema["year"] == pl.Int64


def test_hive_partition_columns_can_be_partitioned_on(tmp_path: Path) -> None:
    source = parquet_folder(tmp_path, "spark", {f"region={r}/part-0.parquet": orders(i * 5, 5) for i, r in
                                                enumerate(["eu", "us"])})  # fmt: skip
    result = run_source(source, str(tmp_path / "staging"), str(tmp_path / "lake"), "--partition-by", "region")
    assert result.returncode == 0, result.stderr
    assert sorted(Path(p).parent.name for p in lake_parquet(str(tmp_path / "lake"))) == ["region=eu", "region=us"]


def test_hive_partitioning_can_be_turned_off(tmp_path: Path) -> None:
    source = parquet_folder(tmp_path, "spark", {"region=eu/part-0.parquet": orders(0, 5)})
    result = run_source(source, str(tmp_path / "staging"), str(tmp_path / "lake"), "--no-hive-partitioning")
    assert result.returncode == 0, result.stderr
    assert read_lake(str(tmp_path / "lake")).columns == ["id", "amount"]


@pytest.mark.parametrize(
    ("columns", "needles"),
    [
        ({"ID": [1], "id": [2]}, ["'ID'", "'id'", "differ only in case"]),
        ({"id": [1], "": [2]}, ["empty column name"]),
    ],
)
def test_column_names_a_reader_would_rename_are_refused(
    tmp_path: Path, columns: dict[str, list[int]], needles: list[str]
) -> None:
    source = parquet_folder(tmp_path, "snap", {"part-0.parquet": pa.table(columns)})
    result = run_source(source, str(tmp_path / "staging"), str(tmp_path / "lake"))
    assert_refused(result, *needles)
    assert not (tmp_path / "lake").exists()


def test_a_partition_column_name_that_is_no_path_segment_is_refused(tmp_path: Path) -> None:
    source = parquet_folder(tmp_path, "snap", {"part-0.parquet": orders(0, 5)})
    transform = 'SELECT *, id % 2 AS "a/b" FROM snapshot'
    result = run_source(
        source, str(tmp_path / "staging"), str(tmp_path / "lake"), "--transform", transform, "--partition-by", "a/b"
    )
    assert_refused(result, "'a/b'", "partition column")


def test_a_partition_value_longer_than_a_path_segment_is_refused(tmp_path: Path) -> None:
    source = parquet_folder(tmp_path, "snap", {"part-0.parquet": pa.table({"id": [1, 2], "k": ["x" * 300, "y"]})})
    result = run_source(source, str(tmp_path / "staging"), str(tmp_path / "lake"), "--partition-by", "k")
    message = assert_refused(result, "'k'", "255 bytes", "xxxxxxxx")
    assert "x" * 300 not in message
    assert not lake_parquet(str(tmp_path / "lake")) if (tmp_path / "lake").exists() else True


def test_a_version_partition_column_is_refused_with_publish_latest(tmp_path: Path) -> None:
    source = parquet_folder(tmp_path, "snap", {"part-0.parquet": pa.table({"id": [1], "version": ["a"]})})
    result = run_source(
        source, str(tmp_path / "staging"), str(tmp_path / "lake"), "--partition-by", "version", "--publish", "latest"
    )
    assert_refused(result, "version", "--publish latest")
    assert not (tmp_path / "lake").exists()


# ---- late or wrong errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "ndjson"])
def test_text_sources_get_the_plan_time_column_check(tmp_path: Path, suffix: str) -> None:
    folder = tmp_path / "text"
    folder.mkdir()
    for i in range(4):
        body = "id,amount\n1,2.0\n" if suffix == "csv" else '{"id": 1, "amount": 2.0}\n'
        (folder / f"part-{i}.{suffix}").write_text(body)
    staging = str(tmp_path / "staging")
    result = run_source(str(folder), staging, str(tmp_path / "lake"), "--partition-by", "amonut", "--group-size", "1")
    assert_refused(result, "'amonut'", "--partition-by")
    assert result.stderr.count("amonut") <= 2, result.stderr  # the table's line and the run's, not once per group
    assert not [i for i in storage.list_files(staging) if "file-groups" in i.uri]


def test_an_unwritable_datalake_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    source = parquet_folder(tmp_path, "snap", {"part-0.parquet": orders(0, 5)})
    (tmp_path / "not-a-folder").write_text("a file, not a folder")
    staging = str(tmp_path / "staging")
    result = run_source(source, staging, str(tmp_path / "not-a-folder" / "lake"))
    assert_refused(result, "--datalake", "not-a-folder")
    assert not storage.list_files(staging)


def test_an_unwritable_staging_area_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    source = parquet_folder(tmp_path, "snap", {"part-0.parquet": orders(0, 5)})
    (tmp_path / "not-a-folder").write_text("a file, not a folder")
    result = run_source(source, str(tmp_path / "not-a-folder" / "staging"), str(tmp_path / "lake"))
    assert_refused(result, "--staging", "not-a-folder")
    assert not (tmp_path / "lake").exists()


def test_permanent_disk_errors_are_not_transient(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError) as raised:
        storage.write_bytes(str(tmp_path / "file" / "below"), b"data")
    assert not raised.value.transient


@pytest.mark.slow
def test_a_missing_bucket_is_named_before_anything_is_written(tmp_path: Path, s3_server: str) -> None:
    source = parquet_folder(tmp_path, "snap", {"part-0.parquet": orders(0, 5)})
    staging = str(tmp_path / "staging")
    result = run_source(source, staging, "s3://no-such-bucket-dbsnaplake/lake/")
    assert_refused(result, "--datalake", "NoSuchBucket")
    assert not storage.list_files(staging)


BAD_OPTIONS = [
    ("--workers", "0"),
    ("--workers", "-3"),
    ("--workers", "many"),
    ("--retries", "-1"),
    ("--worker-memory", "lots"),
    ("--target-file-size", "big"),
    ("--target-file-size", "0"),
    ("--group-size", "0"),
    ("--group-size", "-5MB"),
    ("--executor", "threads"),
    ("--inspect-files", "some"),
    ("--on-bad-value", "skip"),
    ("--publish", "newest"),
    ("--sort-by", "id:sideways"),
    ("--csv-delimiter", ";;"),
    ("--csv-column-types", "id"),
    ("--csv-column-types", "id=integer64"),
    ("--dynamodb-maps", "dict"),
    ("--snapshot-time", "yesterday"),
]


@pytest.mark.parametrize(("flag", "value"), BAD_OPTIONS)
def test_every_bad_option_value_is_a_one_line_error(tmp_path: Path, flag: str, value: str) -> None:
    source = parquet_folder(tmp_path, "snap", {"part-0.parquet": orders(0, 5)})
    before = listing(source)
    result = run_source(source, str(tmp_path / "staging"), str(tmp_path / "lake"), flag, value)
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    message = last_line(result.stderr)
    assert flag in message, message
    assert listing(source) == before
    assert not (tmp_path / "lake").exists()


# ---- empty is normal --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "ndjson"])
def test_a_zero_byte_text_file_is_zero_rows(tmp_path: Path, suffix: str) -> None:
    folder = tmp_path / "text"
    folder.mkdir()
    (folder / f"a.{suffix}").write_text("id,amount\n1,2.5\n" if suffix == "csv" else '{"id": 1, "amount": 2.5}\n')
    (folder / f"b.{suffix}").write_bytes(b"")
    result = run_source(str(folder), str(tmp_path / "staging"), str(tmp_path / "lake"))
    assert result.returncode == 0, result.stderr
    assert read_lake(str(tmp_path / "lake"))["id"].to_list() == [1]


def test_a_zero_row_table_publishes_one_empty_parquet_file_every_reader_opens(tmp_path: Path) -> None:
    source = parquet_folder(tmp_path, "snap", {"part-0.parquet": orders(0, 0)})
    lake = str(tmp_path / "lake")
    result = run_source(source, str(tmp_path / "staging"), lake, "--sort-by", "id")
    assert result.returncode == 0, result.stderr
    (file,) = lake_parquet(lake)
    assert pq.read_table(file).schema.names == ["id", "amount"]
    assert pl.read_parquet(file).height == 0
    assert pl.scan_parquet(f"{lake}/**/*.parquet").collect().columns == ["id", "amount"]
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/**/*.parquet')").fetchall() == [(0,)]
    assert (Path(lake) / "_SUCCESS").exists()


# ---- library use is safe -------------------------------------------------------------------------------------

SCRIPT = """
from dbsnaplake.api import PipelineConfig, S3Location, make_executor, run_pipeline

root = {root!r}
config = PipelineConfig(location=S3Location(s3uri_staging=root + "/staging", s3uri_datalake=root + "/lake"),
                        snapshot_manifest=root + "/manifest/manifest-summary.json", workers=2)
{body}
"""
RUN = """
with make_executor("process", workers=2) as pool:
    print(run_pipeline(config, pool))
"""


def write_script(tmp_path: Path, guarded: bool) -> Path:
    write_parquet(str(tmp_path / "snap" / "part-0.parquet"), orders(0, 5))
    from dbsnaplake.api import build_manifest

    build_manifest(str(tmp_path / "snap"), str(tmp_path / "manifest" / "manifest-summary.json"))
    body = 'if __name__ == "__main__":\n' + textwrap.indent(RUN, "    ") if guarded else RUN
    script = tmp_path / "export.py"
    script.write_text(SCRIPT.format(root=str(tmp_path), body=body))
    return script


@pytest.mark.slow
def test_the_python_api_from_a_script_without_a_main_guard_fails_fast_and_says_why(tmp_path: Path) -> None:
    script = write_script(tmp_path, guarded=False)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert 'if __name__ == "__main__":' in result.stderr, result.stderr
    assert "killed, or out of memory" not in result.stderr
    assert time.perf_counter() - start < 60
    assert not (tmp_path / "lake").exists()


@pytest.mark.slow
def test_the_python_api_from_a_script_with_a_main_guard_works(tmp_path: Path) -> None:
    script = write_script(tmp_path, guarded=True)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "validation: OK" in result.stdout


def test_an_error_at_plan_with_worker_processes_ends_on_its_message(tmp_path: Path) -> None:
    """A run starts its worker processes as it plans (they import the stages meanwhile): when the plan refuses the
    input, the workers that only warmed up end cleanly, and the error stays the last line (no warning after it)."""
    folder = parquet_folder(tmp_path, "source", {f"part-{i}.parquet": orders(10 * i, 10) for i in range(3)})
    result = dbsnaplake(
        "run", "--source", folder, "--staging", str(tmp_path / "staging"), "--datalake", str(tmp_path / "lake"),
        "--executor", "process", "--workers", "2", "--partition-by", "amonut",
    )  # fmt: skip
    assert_refused(result, "'amonut'", "--partition-by")
    assert "resource_tracker" not in result.stderr and "leaked" not in result.stderr, result.stderr
