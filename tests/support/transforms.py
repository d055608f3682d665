"""Transforms used by tests as ``module:function`` (importable in worker processes too)."""

from __future__ import annotations

import polars as pl


def add_amount_band(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(
        pl.when(pl.col("amount") < 50).then(pl.lit("small")).otherwise(pl.lit("large")).alias("amount_band")
    )


def returns_a_number(frame: pl.DataFrame) -> int:
    return 42


# Partition values that need Hive escaping (and "" and None, which both go to __HIVE_DEFAULT_PARTITION__).
TRICKY_REGIONS = [
    "a/b", "x=y", "50%", "c:d", "q?", "hash#", "space here", "ünïcödé", "日本 😀", "a+b", "[x]*{y}", "^caret",
    "tab\there", "new\nline", "'single'", '"double"', "back\\slash", "del\x7f", "%41", "..", ".hidden",
    "_under", "NULL", "007", "2021-01-01", "true", "", None,
]  # fmt: skip


def _region_from_id(frame: pl.DataFrame, regions: list[str | None]) -> pl.DataFrame:
    by_index = dict(enumerate(regions))
    region = (pl.col("id") % len(regions)).replace_strict(by_index, return_dtype=pl.String)
    return frame.with_columns(region.alias("region"))


def add_tricky_region(frame: pl.DataFrame) -> pl.DataFrame:
    """``region = TRICKY_REGIONS[id % len(TRICKY_REGIONS)]``."""
    return _region_from_id(frame, TRICKY_REGIONS)


def add_tricky_region_but_no_empty_string(frame: pl.DataFrame) -> pl.DataFrame:
    """As :func:`add_tricky_region`, but ``""`` is left out (null stays)."""
    return _region_from_id(frame, [r for r in TRICKY_REGIONS if r != ""])


def year_month_slowly(frame: pl.DataFrame) -> pl.DataFrame:
    """The year/month transform, 0.3 s per snapshot file: keeps a run going long enough to kill a worker."""
    import time

    time.sleep(0.3)
    return frame.with_columns(
        pl.col("order_time").dt.year().cast(pl.String).alias("year"),
        pl.col("order_time").dt.month().cast(pl.String).str.zfill(2).alias("month"),
    )


FAIL_FLAG = "DBSNAPLAKE_TEST_FAIL_FLAG"


def year_month_failing_on_some_files(frame: pl.DataFrame) -> pl.DataFrame:
    """The year/month transform, failing for snapshot files whose first ``order_id`` is a multiple of 4,000
    while the file named by ``$DBSNAPLAKE_TEST_FAIL_FLAG`` exists: a failure a user can fix and then rerun."""
    import os

    flag = os.environ.get(FAIL_FLAG)
    if flag and os.path.exists(flag) and frame.height and frame["order_id"][0] % 4_000 == 0:
        raise RuntimeError(f"cannot transform the file starting at order {frame['order_id'][0]}")
    return frame.with_columns(
        pl.col("order_time").dt.year().cast(pl.String).alias("year"),
        pl.col("order_time").dt.month().cast(pl.String).str.zfill(2).alias("month"),
    )


def year_month_a_little_slowly(frame: pl.DataFrame) -> pl.DataFrame:
    """The year/month transform, 0.1 s per snapshot file: the crash matrix's runs last long enough to hit."""
    import time

    time.sleep(0.1)
    return frame.with_columns(
        pl.col("order_time").dt.year().cast(pl.String).alias("year"),
        pl.col("order_time").dt.month().cast(pl.String).str.zfill(2).alias("month"),
    )


def count_rows_seen(frame: pl.DataFrame) -> pl.DataFrame:
    """Each row learns how many rows the transform saw with it: with ``--transform-scope group``, its group's."""
    return frame.with_columns(pl.len().cast(pl.Int64).alias("rows_seen"))


def last_version_of_each_order(frame: pl.DataFrame) -> pl.DataFrame:
    """A group-level dedup: of the rows with the same order_id, keep the last one read (the latest version)."""
    return frame.unique(subset=["order_id"], keep="last", maintain_order=True)
