"""Transforms used by tests as ``module:function`` (importable in worker processes too)."""

from __future__ import annotations

import polars as pl


def add_amount_band(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(
        pl.when(pl.col("amount") < 50).then(pl.lit("small")).otherwise(pl.lit("large")).alias("amount_band")
    )


def returns_a_number(frame: pl.DataFrame) -> int:
    return 42
