"""Publishing a snapshot as a Delta table (``--table-format delta``), with deltalake (delta-rs).

The table is the lake's files as compaction wrote them: one Delta commit lists them (an ``add`` action per file with
its size, record count and explicit partition values), nothing is rewritten. Where the table lives:

- ``--publish historical``: the snapshot's folder (``--datalake``) is the table, ``<datalake>/_delta_log/``; one
  table per snapshot, created by its only commit.
- ``--publish latest``: ``--datalake`` is the table. Each snapshot is one *overwrite* commit that adds the files of
  ``version=<time>/`` and removes those of the previous snapshot, so Delta version ``n`` is the ``n + 1``-th snapshot
  (time travel) for as long as ``dbsnaplake versions remove`` leaves its folder.

**Once and in order.** Every commit carries the Delta app transaction ``txn(appId="dbsnaplake", version=<snapshot
time as YYYYMMDDHHMMSS>)``. A publish first reads the table's transaction version: when it is this snapshot's (a
rerun) or a newer one's (an older snapshot published late), nothing is committed, exactly as ``_latest.json`` never
moves back. The commit is made after ``_SUCCESS``, when the files it names can no longer change, and a rerun of a
published snapshot makes it when a crash cut it off. A commit is one log file written if absent: a crash leaves the
table at the previous version or at the new one, never between.

**Paths.** An ``add`` names its file by its key relative to the table as it is stored, Hive escapes included
(``month=a%2Fb/part-00000-00000.parquet``); delta-rs writes it into the log percent-encoded as the Delta protocol
asks (``month=a%252Fb/...``), which delta-rs and Spark both decode back to the stored key.

**Types.** Data columns take the lake schema (a lake file's Parquet footer); partition columns take the type
the transform gives them (run on an empty frame of the snapshot's schema, as planning does), or ``string`` when the
snapshot's schema is unknown.

**S3.** The commit is a put-if-absent (``If-None-Match``, which S3 has honoured since 2024): delta-rs's
``aws_conditional_put=etag``, so two writers never both win a version, with no DynamoDB lock and without
``AWS_S3_ALLOW_UNSAFE_RENAME``. Credentials, region and endpoint come from the AWS environment, as for every other
request dbsnaplake makes.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dbsnaplake import storage
from dbsnaplake.errors import ConfigError, StageError
from dbsnaplake.frames.partitioning import parse_partition_path
from dbsnaplake.frames.readers import read_parquet_footer
from dbsnaplake.frames.schema import decode_schema
from dbsnaplake.frames.transform import output_schema
from dbsnaplake.frames.types import lake_schema
from dbsnaplake.layout import VERSION_PREFIX
from dbsnaplake.records import Commit, PlanResult
from dbsnaplake.storage.aws import DEFAULT_REGION, aws_endpoint, aws_region

if TYPE_CHECKING:
    import pyarrow as pa

    from dbsnaplake.config.settings import PipelineConfig

DELTA_LOG = "_delta_log"
LOG_ENTRY = re.compile(r"^\d{20}\.(json|checkpoint(\.\d+\.\d+)?\.parquet)$")
APP_ID = "dbsnaplake"
"""The Delta app id of dbsnaplake's commits: their transaction version is the snapshot's time."""


def install_hint() -> str:
    return "--table-format delta needs deltalake: pip install 'dbsnaplake[delta]'"


def snapshot_number(stamp: str) -> int:
    """The snapshot time ``2021_01_01_08_30_00`` as the Delta transaction version ``20210101083000``: it grows with
    the snapshot time, so a table never moves back to an older snapshot."""
    return int(stamp.replace("_", ""))


def table_root(config: PipelineConfig, plan: PlanResult) -> str:
    """The Delta table's folder: the snapshot's own folder (historical), or the static ``--datalake`` (latest)."""
    return config.location.s3dir_datalake if config.publish == "latest" else plan.version_root


def storage_options(uri: str) -> dict[str, str]:
    """delta-rs's options for ``uri``: on S3, the AWS environment dbsnaplake reads, HTTP when the endpoint is
    ``http://`` (a local S3 server), and conditional puts for the commit (see the module's docstring)."""
    if not storage.is_s3(uri):
        return {}
    endpoint = aws_endpoint("s3")
    options = {"aws_conditional_put": "etag"}
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        options["AWS_ALLOW_HTTP"] = "true" if endpoint.startswith("http://") else "false"
    if aws_region() is None:
        options["AWS_REGION"] = DEFAULT_REGION
    return options


def delta_uri(uri: str) -> str:
    """A folder as delta-rs names it: ``s3://bucket/prefix`` or a local path, without the trailing ``/``."""
    return uri.rstrip("/")


# ---- the table's schema ------------------------------------------------------------------------------------


def data_schema(plan: PlanResult, commit: Commit) -> pa.Schema:
    """The lake schema of the data files, from one file's Parquet footer (compaction conforms every file to it; a
    table of no rows has one empty file with it)."""
    first = commit.files[0]
    return read_parquet_footer(storage.join(plan.version_root, first.path), first.size).schema


def partition_fields(config: PipelineConfig, plan: PlanResult, data: pa.Schema) -> list[pa.Field]:
    """The partition columns with their types: the data schema's when the files hold them, else what the transform
    makes of the snapshot's schema, else ``string``."""
    import pyarrow as pa

    found: dict[str, pa.Field] = {f.name: f for f in data if f.name in config.partition_by}
    if plan.schema is not None and len(found) < len(config.partition_by):
        source = decode_schema(plan.schema)
        out = lake_schema(output_schema(config.transform, source), source, config.keep_nanoseconds)
        found = {f.name: f for f in out if f.name in config.partition_by} | found
    return [found.get(name, pa.field(name, pa.string())) for name in config.partition_by]


def table_fields(config: PipelineConfig, plan: PlanResult, commit: Commit) -> tuple[list[pa.Field], list[pa.Field]]:
    """The table's data columns and its partition columns (Spark's order for a partitioned table: data first)."""
    data = data_schema(plan, commit)
    columns = [f for f in data if f.name not in config.partition_by]
    return columns, partition_fields(config, plan, data)


def delta_schema(schema: pa.Schema) -> Any:
    """The Delta schema of ``schema``; a type Delta cannot hold is an error naming the column."""
    from deltalake import Schema

    try:
        return Schema.from_arrow(schema)
    except Exception as exc:
        raise ConfigError(
            f"--table-format delta cannot hold this lake's schema ({exc}): cast the column to a type Delta has "
            "(string, integer, decimal, date, timestamp, struct, list, map) in --transform, or publish as parquet"
        ) from None


# ---- the files -----------------------------------------------------------------------------------------------


def delta_partition_value(text: str | None, field: pa.Field) -> str | None:
    """A Hive partition value as the Delta protocol serializes it; only timestamps differ: UTC, without an offset."""
    import pyarrow as pa

    if text is None or not pa.types.is_timestamp(field.type):
        return text
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def add_actions(commit: Commit, prefix: str, partitions: Sequence[pa.Field], published_ms: int) -> list[Any]:
    """One ``add`` per committed file: its key below the table (as stored: delta-rs encodes it for the log), size,
    explicit partition values and record count."""
    from deltalake.transaction import AddAction

    actions = []
    for f in commit.files:
        values = parse_partition_path(posixpath.dirname(f.path))
        partition_values = {p.name: delta_partition_value(values.get(p.name), p) for p in partitions}
        stats = json.dumps({"numRecords": f.n_record})
        actions.append(AddAction(prefix + f.path, f.size, partition_values, published_ms, True, stats))
    return actions


# ---- the commit ----------------------------------------------------------------------------------------------


def has_commits(uri: str) -> bool:
    """Whether the Delta log at ``uri`` holds a commit (or a checkpoint). A log folder with none is what a commit cut
    off before its log file was named leaves (delta-rs writes ``_commit_<uuid>.json.tmp`` first): no table yet."""
    log = storage.join(uri, DELTA_LOG)
    return any(LOG_ENTRY.match(storage.base_name(info.uri)) for info in storage.list_files(log))


def open_table(uri: str, options: Mapping[str, str]) -> Any | None:
    """The Delta table at ``uri``, or ``None`` when there is none yet."""
    from deltalake import DeltaTable

    return DeltaTable(uri, storage_options=dict(options)) if has_commits(uri) else None


def check_delta(config: PipelineConfig, plan: PlanResult) -> None:
    """Refuse, before anything is published, a snapshot the Delta table cannot take: deltalake missing, or (latest)
    partition columns other than the table's, which an overwrite commit cannot change."""
    try:
        from deltalake.exceptions import DeltaError
    except ImportError:
        raise ConfigError(install_hint()) from None
    uri = delta_uri(table_root(config, plan))
    try:
        table = open_table(uri, storage_options(uri))
        columns = table.metadata().partition_columns if table is not None else list(config.partition_by)
    except DeltaError as exc:
        raise StageError(f"{uri} is not a Delta table dbsnaplake can read ({exc}): publish to another --datalake") from None
    if columns != list(config.partition_by):
        raise ConfigError(
            f"--partition-by {','.join(config.partition_by) or '(none)'} differs from the Delta table {uri}'s "
            f"partition columns ({','.join(columns) or 'none'}), which a snapshot cannot change: keep them, or "
            "publish to a new --datalake"
        )


def commit_delta(config: PipelineConfig, plan: PlanResult, commit: Commit) -> str | None:
    """Commit the published snapshot ``commit`` to the Delta table, once. Returns what it did, or ``None`` when the
    table already holds this snapshot or a newer one. A failure of delta-rs is a :class:`StageError` saying that
    a rerun completes the commit."""
    try:
        from deltalake.exceptions import DeltaError
    except ImportError:
        raise ConfigError(install_hint()) from None
    uri = delta_uri(table_root(config, plan))
    try:
        return commit_snapshot(config, plan, commit, uri)
    except DeltaError as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise StageError(
            f"the Delta commit to {uri} failed ({type(exc).__name__}: {first_line}); the lake itself is published "
            "(_SUCCESS): fix the cause and run the same command again, which makes the commit once"
        ) from None


def commit_snapshot(config: PipelineConfig, plan: PlanResult, commit: Commit, uri: str) -> str | None:
    """:func:`commit_delta` once deltalake is there: check the app transaction, then create or overwrite."""
    import pyarrow as pa
    from deltalake import DeltaTable
    from deltalake.transaction import CommitProperties, Transaction, create_table_with_add_actions

    options = storage_options(uri)
    table = open_table(uri, options)
    number = snapshot_number(plan.version)
    if table is not None and (table.transaction_version(APP_ID) or -1) >= number:
        return None
    columns, partitions = table_fields(config, plan, commit)
    schema = delta_schema(pa.schema(columns + partitions))
    prefix = f"{VERSION_PREFIX}{plan.version}/" if config.publish == "latest" else ""
    actions = add_actions(commit, prefix, partitions, round(commit.published_at * 1000))
    properties = CommitProperties(
        app_transactions=[Transaction(APP_ID, number)],
        custom_metadata={"dbsnaplake.version": plan.version, "dbsnaplake.fingerprint": plan.fingerprint},
    )
    partition_by = list(config.partition_by)
    if table is None:
        create_table_with_add_actions(uri, schema, actions, mode="error", partition_by=partition_by,
                                      storage_options=options, commit_properties=properties)  # fmt: skip
        return f"Delta table {uri} created (version 0)"
    if config.publish != "latest":
        raise StageError(
            f"{uri} already holds a Delta table that dbsnaplake did not commit this snapshot to: a historical "
            "snapshot folder is a table of its own, so publish to a new --datalake folder"
        )
    table.create_write_transaction(actions, "overwrite", schema, partition_by=partition_by,
                                   commit_properties=properties)  # fmt: skip
    return f"Delta table {uri} at version {DeltaTable(uri, storage_options=options).version()}"
