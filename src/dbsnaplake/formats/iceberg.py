"""Publishing the data lake as an Iceberg table (``--table-format iceberg``), with pyiceberg.

The table's data files are the compacted files themselves: nothing is rewritten. Each file is registered with the
column statistics and the partition values read from its Parquet footer (the files hold their partition columns:
``--table-format iceberg`` turns ``--partition-columns-in-files`` on), under an identity partition spec on
``--partition-by``. A snapshot of the lake is ONE atomic catalog commit:

- a new table: created with its first snapshot in one commit (a create-table transaction);
- an existing table: one ``overwrite`` snapshot that removes the previous snapshot's files and adds this one's, so
  time travel keeps every earlier snapshot (while its files are on disk: see ``dbsnaplake versions remove``).

Every commit carries ``dbsnaplake.fingerprint`` and ``dbsnaplake.version`` in its snapshot summary and is tagged with
the version stamp (``2024_01_01_00_00_00``). The commit is made before ``_SUCCESS`` is written; a rerun first looks
for its fingerprint in the table's snapshots, so a crash before, during or after the commit ends, after the rerun,
with exactly one commit. ``--publish historical`` gives a table per snapshot, named after its own data-lake folder;
``--publish latest`` one table named after the static folder, one overwrite commit per snapshot, never from a newer
snapshot back to an older one.

Catalogs (``--catalog``): ``sqlite:///PATH`` (pyiceberg's SQL catalog), ``rest+https://HOST/PATH`` (a REST catalog),
``glue`` (AWS Glue), or the name of a catalog in pyiceberg's own configuration (``~/.pyiceberg.yaml``,
``PYICEBERG_CATALOG__<NAME>__*``). By default: ``iceberg-catalog.db``, an SQLite catalog beside a local DATALAKE
folder (in its parent folder), or ``~/.dbsnaplake/iceberg-catalog.db`` for an S3 one (a file cannot be shared on S3:
give a Glue or REST catalog to share the table). Options for any catalog may be set as
``PYICEBERG_CATALOG__DBSNAPLAKE__<KEY>`` (a REST token, a Glue catalog id...).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from dbsnaplake import storage
from dbsnaplake.errors import ConfigError, StageError
from dbsnaplake.storage.aws import aws_endpoint, aws_region

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.manifest import DataFile
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.metadata import TableMetadata

    from dbsnaplake.config.settings import PipelineConfig

CATALOG_NAME = "dbsnaplake"
"""The name pyiceberg knows our catalog by: ``PYICEBERG_CATALOG__DBSNAPLAKE__<KEY>`` adds options to it."""
CATALOG_FILE = "iceberg-catalog.db"
FINGERPRINT_PROPERTY = "dbsnaplake.fingerprint"
VERSION_PROPERTY = "dbsnaplake.version"
FAULT_VARIABLE = "DBSNAPLAKE_FAULT_TABLE_COMMIT"
"""For the crash tests: ``before``, ``during`` or ``after`` kills this process (SIGKILL) at that point of the commit."""
FOOTER_THREADS = 16
INSTALL_HINT = "install the iceberg extra: pip install 'dbsnaplake[iceberg]'"


# ---- the catalog ----------------------------------------------------------------------------------------------


def default_catalog(lake: str) -> str:
    """``sqlite:///`` a file beside a local data lake, or in ``~/.dbsnaplake/`` for an S3 one."""
    if storage.is_s3(lake):
        folder = Path.home() / ".dbsnaplake"
    else:
        folder = Path(storage.parent(storage.as_dir(lake).rstrip("/")))
    return f"sqlite:///{(folder / CATALOG_FILE).absolute()}"


def catalog_properties(spec: str) -> dict[str, str]:
    """pyiceberg's catalog properties for a ``--catalog`` value (``{}``: a catalog of pyiceberg's own configuration),
    with the S3 endpoint and region of the AWS environment for the table's files."""
    if spec.startswith("sqlite:///"):
        properties = {"type": "sql", "uri": spec, "init_catalog_tables": "true"}
    elif spec.startswith(("rest+https://", "rest+http://")):
        properties = {"type": "rest", "uri": spec[len("rest+") :]}
    elif spec == "glue":
        properties = {"type": "glue"}
        if region := aws_region():
            properties["glue.region"] = region
        if endpoint := aws_endpoint("glue"):
            properties["glue.endpoint"] = endpoint
    elif re.fullmatch(r"[A-Za-z0-9_-]+", spec):
        properties = {}
    else:
        raise ConfigError(
            f"--catalog {spec}: not a catalog; give sqlite:///PATH, rest+https://HOST/PATH, glue, or the name of a "
            "catalog in ~/.pyiceberg.yaml"
        )
    return {**properties, **s3_properties()} if properties else properties


def s3_properties() -> dict[str, str]:
    """pyiceberg's FileIO reaches S3 where dbsnaplake does: ``AWS_ENDPOINT_URL`` and ``AWS_REGION``."""
    properties = {}
    if endpoint := aws_endpoint("s3"):
        properties["s3.endpoint"] = endpoint
    if region := aws_region():
        properties["s3.region"] = region
    return properties


def open_catalog(spec: str | None, lake: str) -> Catalog:
    try:
        from pyiceberg.catalog import load_catalog
    except ImportError:
        raise ConfigError(f"--table-format iceberg needs pyiceberg: {INSTALL_HINT}") from None
    spec = spec or default_catalog(lake)
    properties = catalog_properties(spec)
    if spec.startswith("sqlite:///"):  # SQLite makes the file, not its folder
        Path(spec[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        return load_catalog(CATALOG_NAME if properties else spec, **properties)
    except ImportError as exc:
        raise ConfigError(f"--catalog {spec} needs {exc.name}: {INSTALL_HINT}") from None
    except Exception as exc:  # pyiceberg raises ValueError, NotInstalledError, ... for a catalog it cannot load
        raise ConfigError(f"--catalog {spec}: pyiceberg cannot load it ({exc}); check its options") from None


def table_identifier(config: PipelineConfig) -> tuple[str, str]:
    """``--table-identifier``, or the data-lake folder's parent and own name (``datalake/db/orders/`` →
    ``("db", "orders")``), lower-cased, anything but letters, digits and ``_`` made ``_`` (as Glue wants)."""
    if config.table_identifier:
        namespace, dot, name = config.table_identifier.rpartition(".")
        if not dot or not namespace or not name:
            raise ConfigError(f"--table-identifier {config.table_identifier}: give it as namespace.table")
        return namespace, name
    folder = config.location.s3dir_datalake.rstrip("/")
    parent = storage.parent(folder).rstrip("/")
    names = [storage.base_name(parent) or "default", storage.base_name(folder)]
    namespace, name = (re.sub(r"[^a-z0-9_]", "_", n.lower()) for n in names)
    return namespace, name


def iceberg_uri(uri: str) -> str:
    """A file's URI as Iceberg metadata names it: ``s3://...`` as it is, a local path as ``file:///...``, the path
    as it is (Iceberg does not decode ``%``: ``city=New%20York/`` is the folder's literal name)."""
    return uri if storage.is_s3(uri) else f"file://{Path(uri).absolute()}"


# ---- the commit -----------------------------------------------------------------------------------------------


def commit_iceberg(config: PipelineConfig, fingerprint: str, version: str, files: Mapping[str, int]) -> str:
    """Register ``files`` (this snapshot's data-lake files: URI → size) as the table's current snapshot in one
    atomic commit, unless a commit of ``fingerprint`` (or, in ``latest`` mode, of a newer version) is already there. Returns what
    happened, for the publish result."""
    fault_point("before")
    lake = config.location.s3dir_datalake
    catalog = open_catalog(config.catalog, lake)
    namespace, name = table_identifier(config)
    where = f"Iceberg table {namespace}.{name}"
    try:
        table = load_table(catalog, (namespace, name))
        if table is not None:
            if is_committed(table, fingerprint):
                return f"{where} (already committed)"
            current = current_version(table)
            if config.publish == "latest" and current is not None and current > version:
                return f"{where} stays on the newer version {current}"
        transaction = start_transaction(catalog, table, (namespace, name), iceberg_uri(lake), files, config)
        data_files = read_data_files(transaction, files)
        add_snapshot(transaction, table, data_files, fingerprint, version)
        fault_point("during")
        transaction.commit_transaction()
    except (ConfigError, StageError):
        raise
    except Exception as exc:
        raise StageError(
            f"could not commit {where} in --catalog {config.catalog or default_catalog(lake)}: {exc}; fix the "
            "cause and rerun, the commit is made once"
        ) from exc
    fault_point("after")
    return f"{where} committed"


def load_table(catalog: Catalog, identifier: tuple[str, str]) -> Table | None:
    """The table, or ``None``; its namespace is created when missing."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError

    if not catalog.namespace_exists(identifier[0]):
        with contextlib.suppress(NamespaceAlreadyExistsError):  # made by a concurrent run
            catalog.create_namespace(identifier[0])
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        return None


def is_committed(table: Table, fingerprint: str) -> bool:
    """Whether one of the table's snapshots was made by a publish of ``fingerprint`` (a run's plan)."""
    return any(s.summary is not None and s.summary.get(FINGERPRINT_PROPERTY) == fingerprint for s in table.snapshots())


def current_version(table: Table) -> str | None:
    snapshot = table.current_snapshot()
    return snapshot.summary.get(VERSION_PROPERTY) if snapshot is not None and snapshot.summary is not None else None


def start_transaction(
    catalog: Catalog,
    table: Table | None,
    identifier: tuple[str, str],
    location: str,
    files: Mapping[str, int],
    config: PipelineConfig,
) -> Transaction:
    """A transaction on the table (its schema widened to the files'), or one creating it with an identity partition
    spec on the partition columns; either way with the name mapping that reads files without Iceberg field ids."""
    from pyiceberg.table import TableProperties

    schema = file_schema(next(iter(files))) if files else None
    if table is None:
        if schema is None:
            raise StageError(f"no data-lake file to make the Iceberg table {'.'.join(identifier)} from")
        transaction: Transaction = catalog.create_table_transaction(identifier, schema=schema, location=location)
        if config.partition_by:
            with transaction.update_spec() as spec:
                for column in config.partition_by:
                    spec.add_identity(column)
    else:
        partitioned_by = tuple(table.schema().find_column_name(f.source_id) for f in table.spec().fields)
        if partitioned_by != config.partition_by:
            raise StageError(
                f"the Iceberg table {'.'.join(identifier)} is partitioned by {','.join(map(str, partitioned_by)) or '(none)'}"
                f", this run by {','.join(config.partition_by) or '(none)'}: publish to another table "
                "(--table-identifier) or drop that one"
            )
        transaction = table.transaction()
        if schema is not None:
            with transaction.update_schema() as update:
                update.union_by_name(schema)
    mapping = transaction.table_metadata.schema().name_mapping.model_dump_json()
    transaction.set_properties({TableProperties.DEFAULT_NAME_MAPPING: mapping})
    return transaction


def file_schema(uri: str) -> pa.Schema:
    from dbsnaplake.frames.readers import read_parquet_footer

    return read_parquet_footer(uri).schema


def read_data_files(transaction: Transaction, files: Mapping[str, int]) -> list[DataFile]:
    """Each file's Iceberg entry (size, column statistics, partition values), from its Parquet footer: one ranged
    read through dbsnaplake's storage (its S3 retries), as pyiceberg's ``add_files`` makes it."""
    metadata = transaction.table_metadata
    with ThreadPoolExecutor(FOOTER_THREADS) as pool:
        data_files = list(pool.map(lambda item: data_file(item[0], item[1], metadata), files.items()))
    for entry in data_files:
        check_one_partition_value(entry, [f.source_id for f in metadata.spec().fields], metadata.schema())
    return data_files


def data_file(uri: str, size: int, metadata: TableMetadata) -> DataFile:
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import (
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

    with storage.open_input_file(uri, size) as f:
        footer = pq.ParquetFile(f).metadata
    schema = metadata.schema()
    statistics = data_file_statistics_from_parquet_metadata(
        footer, compute_statistics_plan(schema, metadata.properties), parquet_path_to_id_mapping(schema)
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=iceberg_uri(uri),
        file_format=FileFormat.PARQUET,
        partition=statistics.partition(metadata.spec(), schema),
        file_size_in_bytes=size,
        sort_order_id=None,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )


def check_iceberg(config: PipelineConfig, files: Mapping[str, int]) -> None:
    """Before anything is published: refuse a file of a Hive default-partition folder whose partition column mixes
    null with ``""`` or NaN (Hive writes them to one folder; an Iceberg data file has one partition value). Only
    the files of such folders are read, and only their partition columns."""
    import pyarrow.parquet as pq

    from dbsnaplake.frames.partitioning import DEFAULT_PARTITION

    for uri, size in files.items():
        if f"={DEFAULT_PARTITION}/" not in uri:
            continue
        with storage.open_input_file(uri, size) as f:
            columns = pq.ParquetFile(f).read(columns=list(config.partition_by))
        for name, column in zip(columns.column_names, columns.columns, strict=True):
            if 0 < column.null_count < len(column):
                value = next(v for v in column.to_pylist() if v is not None)
                raise StageError(
                    f"{uri}: partition column {name} holds {value!r} and also {column.null_count} nulls in one Hive "
                    "folder, but an Iceberg data file has one partition value: make them one value in --transform "
                    f"(e.g. NULLIF({name}, '')) and run again with --fresh"
                )


def check_one_partition_value(data_file: DataFile, source_ids: list[int], schema: Schema) -> None:
    """Refuse a file whose partition column holds nulls (or NaNs) beside its one value: Hive writes ``""`` and null
    (NaN and null) to one folder, but an Iceberg file has one partition value, and the other rows would be pruned
    by a filter on it."""
    for position, source_id in enumerate(source_ids):
        value = data_file.partition[position]
        nulls = (data_file.null_value_counts or {}).get(source_id, 0)
        nans = (data_file.nan_value_counts or {}).get(source_id, 0)
        if (value is not None and nulls + nans > 0) or (value is None and nans > 0):
            name = schema.find_column_name(source_id)
            raise StageError(
                f"{data_file.file_path}: partition column {name} holds {value!r} and also {nulls} nulls, {nans} NaNs "
                "in one Hive folder, but an Iceberg data file has one partition value: make them one value in "
                f"--transform (e.g. NULLIF({name}, '')) and run again with --fresh"
            )


def add_snapshot(
    transaction: Transaction, table: Table | None, data_files: list[DataFile], fingerprint: str, version: str
) -> None:
    """One snapshot: the table's current files out, ``data_files`` in; tagged with the version stamp."""
    from pyiceberg.table.update.snapshot import ManageSnapshots

    properties = {FINGERPRINT_PROPERTY: fingerprint, VERSION_PROPERTY: version}
    previous = [task.file for task in table.scan().plan_files()] if table is not None else []
    update = transaction.update_snapshot(snapshot_properties=properties)
    with update.overwrite() if previous else update.fast_append() as snapshot:
        for data_file in previous:
            snapshot.delete_data_file(data_file)
        for data_file in data_files:
            snapshot.append_data_file(data_file)
    made = transaction.table_metadata.current_snapshot()
    assert made is not None
    with ManageSnapshots(transaction) as manage:
        if version in transaction.table_metadata.refs:  # the same snapshot planned afresh (--fresh) and published again
            manage.remove_tag(version)
        manage.create_tag(made.snapshot_id, version)


def fault_point(point: str) -> None:
    """Die here, as a killed process does, when the crash tests ask for it (see :data:`FAULT_VARIABLE`)."""
    if os.environ.get(FAULT_VARIABLE) == point:
        os.kill(os.getpid(), signal.SIGKILL)
