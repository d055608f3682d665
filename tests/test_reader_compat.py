"""The data lake reads back the same in DuckDB, Polars and pyarrow, partition values with special characters
included.

The transform gives each row a string partition column ``region`` whose values need Hive escaping
(``a/b`` → ``region=a%2Fb``, ``50%`` → ``region=50%25``, ...). Every reader must decode the folder names back
to the very values the transform produced, as strings (no type inference), with null for the default
partition. ``""`` and null are written to the same folder, ``__HIVE_DEFAULT_PARTITION__``, as Hive does, so
``""`` reads back as null.

Reader options that keep partition values as strings:

* DuckDB: ``read_parquet(..., hive_partitioning = true, hive_types_autocast = false)``.
* Polars: ``scan_parquet("<lake>/**/*.parquet", hive_partitioning=True, hive_schema={"region": pl.String})`` (a
  hive schema also turns off ``try_parse_hive_dates`` for that column). The glob matters: given the folder,
  Polars refuses the ``_SUCCESS`` commit file beside the Parquet files.
* pyarrow: ``ds.dataset(..., partitioning=ds.partitioning(schema, flavor="hive"))``, or
  ``ds.HivePartitioning.discover(infer_dictionary=False)``, which infers ``string`` when a value is not a
  number.

Known deviation (documented reader behaviour, not an escaping problem): ``pyarrow.dataset`` skips every path
segment that starts with ``.`` or ``_`` (``ignore_prefixes`` defaults to ``[".", "_"]``, like Hadoop's hidden
files), so a partition *column* named ``_region`` makes the whole lake invisible to it unless
``ignore_prefixes=[".", "_SUCCESS"]`` is passed (the commit file must still be skipped). Values starting with ``.`` or ``_`` are fine: the segment starts with
``region=``. See :func:`test_pyarrow_skips_partition_columns_starting_with_an_underscore`.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from dbsnaplake import storage
from dbsnaplake.api import PipelineConfig, SortKey, build_manifest, run_pipeline

from .support.lake import lake_files
from .support.snapshots import orders_config, write_parquet
from .support.transforms import TRICKY_REGIONS

N_FILES, ROWS_PER_FILE = 3, 60
COLUMNS = ["id", "amount", "region"]


def tricky_snapshot(root: str) -> str:
    """Three small files of ``id, amount``; returns the manifest URI."""
    folder = storage.join(root, "snapshot")
    for k in range(N_FILES):
        ids = list(range(k * ROWS_PER_FILE, (k + 1) * ROWS_PER_FILE))
        write_parquet(storage.join(folder, f"part-{k}.parquet"), pa.table({"id": ids, "amount": [i / 4 for i in ids]}))
    manifest = storage.join(root, "manifests", "manifest-summary.json")
    build_manifest(folder, manifest)
    return manifest


def expected_rows(regions: list[str | None]) -> pl.DataFrame:
    """What the transform produced, with ``""`` as null (both are the default partition)."""
    ids = list(range(N_FILES * ROWS_PER_FILE))
    return pl.DataFrame(
        {
            "id": ids,
            "amount": [i / 4 for i in ids],
            "region": [regions[i % len(regions)] or None for i in ids],
        },
        schema={"id": pl.Int64, "amount": pl.Float64, "region": pl.String},
    )


def build_lake(root: str, transform: str, partition_column: str = "region") -> PipelineConfig:
    config = orders_config(
        root,
        tricky_snapshot(root),
        partition_by=(partition_column,),
        sort_by=(SortKey("id"),),
        transform=transform,
    )
    assert run_pipeline(config).validation.ok
    return config


# ---- the three readers, each returning id, amount, region as a Polars frame sorted by id ------------------


def to_polars(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.sort("id")


def read_with_duckdb(lake: str) -> pl.DataFrame:
    query = (
        f"SELECT id, amount, region FROM read_parquet('{lake}**/*.parquet', "
        "hive_partitioning = true, hive_types_autocast = false) ORDER BY id"
    )
    return to_polars(duckdb.connect().sql(query).to_arrow_table())


def read_with_polars(lake: str) -> pl.DataFrame:
    frame = pl.scan_parquet(f"{lake}**/*.parquet", hive_partitioning=True, hive_schema={"region": pl.String})
    return frame.select(COLUMNS).sort("id").collect()


def read_with_pyarrow(lake: str) -> pl.DataFrame:
    partitioning = ds.partitioning(pa.schema([("region", pa.string())]), flavor="hive")
    table = ds.dataset(lake, format="parquet", partitioning=partitioning).to_table(columns=COLUMNS)
    return to_polars(table)


def read_with_pyarrow_discovery(lake: str) -> pl.DataFrame:
    partitioning = ds.HivePartitioning.discover(infer_dictionary=False)
    dataset = ds.dataset(lake, format="parquet", partitioning=partitioning)
    assert dataset.schema.field("region").type == pa.string()
    return to_polars(dataset.to_table(columns=COLUMNS))


READERS: dict[str, Callable[[str], pl.DataFrame]] = {
    "duckdb": read_with_duckdb,
    "polars": read_with_polars,
    "pyarrow": read_with_pyarrow,
    "pyarrow-discover": read_with_pyarrow_discovery,
}


def assert_reads_back(frame: pl.DataFrame, expected: pl.DataFrame) -> None:
    frame = frame.select(COLUMNS).with_columns(pl.col("region").cast(pl.String), pl.col("id").cast(pl.Int64))
    assert frame.height == expected.height
    mismatched = frame.join(expected, on="id", suffix="_expected").filter(
        pl.col("region").ne_missing(pl.col("region_expected")) | pl.col("amount").ne_missing(pl.col("amount_expected"))
    )
    assert mismatched.is_empty(), f"decoded differently:\n{mismatched}"
    assert frame.equals(expected, null_equal=True)


@pytest.fixture
def tricky_lake(local_root: str) -> PipelineConfig:
    return build_lake(local_root, "tests.support.transforms:add_tricky_region_but_no_empty_string")


@pytest.mark.parametrize("reader", list(READERS))
def test_readers_decode_escaped_partition_values(tricky_lake: PipelineConfig, reader: str) -> None:
    frame = READERS[reader](tricky_lake.location.s3dir_datalake)
    assert_reads_back(frame, expected_rows([r for r in TRICKY_REGIONS if r != ""]))


def test_the_lake_folders_are_escaped_like_hive(tricky_lake: PipelineConfig) -> None:
    lake = tricky_lake.location.s3dir_datalake
    folders = {storage.parent(uri)[len(lake) :].rstrip("/") for uri in lake_files(tricky_lake)}
    for folder in (
        "region=a%2Fb",
        "region=x%3Dy",
        "region=50%25",
        "region=c%3Ad",
        "region=q%3F",
        "region=hash%23",
    ):
        assert folder in folders
    assert "region=space here" in folders
    assert "region=ünïcödé" in folders
    assert "region=%2541" in folders  # a literal "%41" is not decoded twice
    assert "region=__HIVE_DEFAULT_PARTITION__" in folders
    assert len(folders) == len([r for r in TRICKY_REGIONS if r != ""])


def test_empty_string_and_null_in_one_group_share_the_default_partition(local_root: str) -> None:
    config = build_lake(local_root, "tests.support.transforms:add_tricky_region")
    for read in READERS.values():
        assert_reads_back(read(config.location.s3dir_datalake), expected_rows(TRICKY_REGIONS))


def test_pyarrow_skips_partition_columns_starting_with_an_underscore(local_root: str) -> None:
    """Documented pyarrow behaviour (``ignore_prefixes=[".", "_"]``), shown here so nobody is surprised."""
    config = build_lake(local_root, "SELECT *, CAST(id % 3 AS VARCHAR) AS _region FROM snapshot", "_region")
    lake = config.location.s3dir_datalake
    everything = N_FILES * ROWS_PER_FILE

    assert duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{lake}**/*.parquet')").fetchone() == (
        everything,
    )
    assert (
        pl.scan_parquet(f"{lake}**/*.parquet", hive_partitioning=True).select(pl.len()).collect().item() == everything
    )
    assert ds.dataset(lake, format="parquet", partitioning="hive").count_rows() == 0
    visible = ds.dataset(lake, format="parquet", partitioning="hive", ignore_prefixes=[".", "_SUCCESS"])
    assert visible.count_rows() == everything
