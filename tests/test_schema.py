"""Schema drift between snapshot files, unified by column name the way DuckDB's ``union_by_name`` does it.

A column missing from a file is null there; a null-only column takes the other files' type; numbers widen;
timestamps take the finer unit. Types that cannot be unified raise :class:`SchemaConflictError` naming the
column and both files, before anything is written.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa
import pytest

from dbsnaplake import storage
from dbsnaplake.api import SchemaConflictError, SnapshotError, SortKey, build_manifest, run_pipeline
from dbsnaplake.frames.schema import conform, decode_schema, encode_schema, plain_schema, unify

from .support.lake import lake_files, read_file, read_lake
from .support.snapshots import orders_config, write_parquet


def schema(**types: pa.DataType) -> pa.Schema:
    return pa.schema(list(types.items()))


# ---- unify -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "unified"),
    [
        (pa.int32(), pa.int64(), pa.int64()),
        (pa.int64(), pa.int32(), pa.int64()),
        (pa.int8(), pa.int16(), pa.int16()),
        (pa.null(), pa.string(), pa.string()),
        (pa.int64(), pa.null(), pa.int64()),
        (pa.int64(), pa.float64(), pa.float64()),
        (pa.int32(), pa.float32(), pa.float64()),
        (pa.float32(), pa.float64(), pa.float64()),
        (pa.timestamp("ms"), pa.timestamp("us"), pa.timestamp("us")),
        (pa.timestamp("ns"), pa.timestamp("s"), pa.timestamp("ns")),
        (pa.timestamp("ms", "UTC"), pa.timestamp("us", "UTC"), pa.timestamp("us", "UTC")),
        (pa.decimal128(10, 2), pa.decimal128(12, 4), pa.decimal128(12, 4)),
        (pa.dictionary(pa.int32(), pa.string()), pa.string(), pa.string()),
        (pa.string(), pa.string(), pa.string()),
    ],
)
def test_unify_widens_types(first: pa.DataType, second: pa.DataType, unified: pa.DataType) -> None:
    assert unify([("a.parquet", schema(x=first)), ("b.parquet", schema(x=second))]) == schema(x=unified)


def test_unify_matches_columns_by_name_in_order_of_first_appearance() -> None:
    unified = unify(
        [
            ("a.parquet", schema(id=pa.int64(), name=pa.string())),
            ("b.parquet", schema(name=pa.string(), id=pa.int32(), extra=pa.float64())),
            ("c.parquet", schema(id=pa.int64())),
        ]
    )
    assert unified == schema(id=pa.int64(), name=pa.string(), extra=pa.float64())


def test_unify_of_nothing_is_the_empty_schema() -> None:
    assert unify([]) == pa.schema([])


def test_unify_drops_metadata_and_not_null() -> None:
    strict = pa.schema([pa.field("x", pa.int64(), nullable=False)], metadata={b"pandas": b"{}"})
    unified = unify([("a.parquet", strict)])
    assert unified.field("x").nullable
    assert not unified.metadata
    assert plain_schema(pa.schema([("d", pa.dictionary(pa.int8(), pa.string()))])) == schema(d=pa.string())


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (pa.string(), pa.int64()),
        (pa.int64(), pa.string()),
        (pa.timestamp("us", "UTC"), pa.timestamp("us")),
        (pa.timestamp("us"), pa.timestamp("ms", "Europe/Paris")),
        (pa.int64(), pa.bool_()),
        (pa.date32(), pa.int32()),
        (pa.list_(pa.int64()), pa.int64()),
    ],
)
def test_incompatible_types_name_the_column_and_both_sources(first: pa.DataType, second: pa.DataType) -> None:
    with pytest.raises(SchemaConflictError) as raised:
        unify(
            [
                ("s3://b/snap/part-0.parquet", schema(id=pa.int64(), code=first)),
                ("s3://b/snap/part-1.parquet", schema(id=pa.int64(), code=second)),
            ]
        )
    message = str(raised.value)
    assert "'code'" in message
    assert "s3://b/snap/part-0.parquet" in message
    assert "s3://b/snap/part-1.parquet" in message
    assert str(first) in message and str(second) in message


def test_a_conflict_in_the_third_file_names_the_file_that_set_the_type() -> None:
    with pytest.raises(SchemaConflictError) as raised:
        unify(
            [
                ("a.parquet", schema(id=pa.int64())),
                ("b.parquet", schema(id=pa.int64(), code=pa.int64())),
                ("c.parquet", schema(id=pa.int64(), code=pa.string())),
            ]
        )
    message = str(raised.value)
    assert "int64 in b.parquet but string in c.parquet" in message
    assert "a.parquet" not in message


@pytest.mark.parametrize("earlier", [pa.null(), pa.int32()])
def test_a_conflict_names_the_file_whose_type_conflicts(earlier: pa.DataType) -> None:
    with pytest.raises(SchemaConflictError) as raised:
        unify(
            [
                ("a.parquet", schema(code=earlier)),
                ("b.parquet", schema(code=pa.int64())),
                ("c.parquet", schema(code=pa.string())),
            ]
        )
    message = str(raised.value)
    assert "b.parquet" in message and "c.parquet" in message, message
    assert "a.parquet" not in message, message


def test_schemas_survive_the_manifest_encoding() -> None:
    s = schema(id=pa.int64(), t=pa.timestamp("us", "UTC"), d=pa.decimal128(12, 4), n=pa.null())
    assert decode_schema(encode_schema(s)) == s


# ---- conform -----------------------------------------------------------------------------------------------


def test_conform_reorders_casts_and_null_fills() -> None:
    target = schema(id=pa.int64(), name=pa.string(), amount=pa.float64(), note=pa.string())
    table = pa.table({"amount": pa.array([1, 2], pa.int32()), "id": pa.array([7, 8], pa.int32())})

    out = conform(table, target, "a.parquet")

    assert out.schema == target
    assert out.to_pylist() == [
        {"id": 7, "name": None, "amount": 1.0, "note": None},
        {"id": 8, "name": None, "amount": 2.0, "note": None},
    ]


def test_conform_casts_an_all_null_column() -> None:
    out = conform(pa.table({"note": pa.nulls(3)}), schema(note=pa.string()), "c.parquet")
    assert out.schema == schema(note=pa.string())
    assert out["note"].null_count == 3


def test_conform_names_the_file_when_a_value_does_not_fit() -> None:
    table = pa.table({"n": pa.array([2**63], pa.uint64())})
    with pytest.raises(SnapshotError, match=r"column 'n' of big\.parquet cannot be read as int64"):
        conform(table, schema(n=pa.int64()), "big.parquet")


# ---- through the pipeline ----------------------------------------------------------------------------------

T0 = dt.datetime(2023, 5, 1, 12, 0, 0)


def with_plain_strings(s: pa.Schema) -> pa.Schema:
    """``large_string`` as ``string``: Polars exports ``large_string``; both are one Parquet type."""
    return pa.schema([(f.name, pa.string() if f.type == pa.large_string() else f.type) for f in s])


def drifting_snapshot(root: str) -> str:
    """Four files of one table that drifted over time; returns the manifest URI."""
    folder = storage.join(root, "snapshot")
    files = {
        # the reference layout
        "part-0.parquet": pa.table(
            {
                "id": pa.array([1, 2, 3], pa.int64()),
                "region": ["eu", "us", "eu"],
                "amount": pa.array([10, 20, 30], pa.int64()),
                "note": ["x", None, "z"],
                "at": pa.array([T0, T0, T0], pa.timestamp("us")),
            }
        ),
        # no 'note' column, 'amount' as int32, 'at' in milliseconds, columns in another order
        "part-1.parquet": pa.table(
            {
                "at": pa.array([T0, T0], pa.timestamp("ms")),
                "amount": pa.array([40, 2_000_000_000], pa.int32()),
                "region": ["us", "eu"],
                "id": pa.array([4, 5], pa.int64()),
            }
        ),
        # 'note' is all null, so Parquet stores it with the null type
        "part-2.parquet": pa.table(
            {
                "id": pa.array([6, 7], pa.int64()),
                "region": ["us", "us"],
                "amount": pa.array([60, 2**40], pa.int64()),
                "note": pa.nulls(2),
                "at": pa.array([T0, T0], pa.timestamp("us")),
            }
        ),
        # a column that only newer files have
        "part-3.parquet": pa.table(
            {
                "id": pa.array([8], pa.int64()),
                "region": ["eu"],
                "amount": pa.array([80], pa.int64()),
                "note": ["new"],
                "at": pa.array([T0], pa.timestamp("us")),
                "channel": ["web"],
            }
        ),
    }
    for name, table in files.items():
        write_parquet(storage.join(folder, name), table)
    manifest = storage.join(root, "manifests", "manifest-summary.json")
    build_manifest(folder, manifest)
    return manifest


@pytest.mark.parametrize("group_size", [1, None], ids=["a-group-per-file", "one-group"])
def test_drifted_files_unify_in_the_lake(local_root: str, group_size: int | None) -> None:
    manifest = drifting_snapshot(local_root)
    config = orders_config(
        local_root,
        manifest,
        partition_by=("region",),
        sort_by=(SortKey("id"),),
        transform=None,
        group_size=group_size,
    )

    result = run_pipeline(config)

    assert result.validation.ok
    if group_size == 1:
        assert len(result.plan.group_manifests) == 4
    for uri in lake_files(config):
        assert with_plain_strings(read_file(uri).schema) == schema(
            id=pa.int64(), amount=pa.int64(), note=pa.string(), at=pa.timestamp("us"), channel=pa.string()
        )
    lake = read_lake(config).sort("id")
    expected = pl.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6, 7, 8],
            "amount": [10, 20, 30, 40, 2_000_000_000, 60, 2**40, 80],
            "note": ["x", None, "z", None, None, None, None, "new"],
            "at": [T0] * 8,
            "channel": [None] * 7 + ["web"],
            "region": ["eu", "us", "eu", "us", "eu", "us", "us", "eu"],
        },
        schema={
            "id": pl.Int64,
            "amount": pl.Int64,
            "note": pl.String,
            "at": pl.Datetime("us"),
            "channel": pl.String,
            "region": pl.String,
        },
    )
    assert lake.select(expected.columns).equals(expected, null_equal=True)


def test_conflicting_files_stop_the_run_before_anything_is_written(local_root: str) -> None:
    folder = storage.join(local_root, "snapshot")
    good = storage.join(folder, "part-0.parquet")
    bad = storage.join(folder, "part-1.parquet")
    write_parquet(good, pa.table({"id": [1, 2], "code": ["A1", "B2"], "region": ["eu", "us"]}))
    write_parquet(bad, pa.table({"id": [3], "code": pa.array([17], pa.int64()), "region": ["eu"]}))
    manifest = storage.join(local_root, "manifests", "manifest-summary.json")
    build_manifest(folder, manifest)
    config = orders_config(local_root, manifest, partition_by=("region",), sort_by=(), transform=None)

    with pytest.raises(SchemaConflictError) as raised:
        run_pipeline(config)

    message = str(raised.value)
    assert "'code'" in message
    assert good in message and bad in message
    assert "string" in message and "int64" in message
    assert storage.list_files(config.location.s3dir_datalake) == []
    assert storage.list_files(config.location.s3dir_staging) == [], "planning wrote before checking schemas"
