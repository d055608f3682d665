"""Settings of a run over a snapshot source, from a TOML file (``dbsnaplake run --config dbsnaplake.toml``) and
command-line flags, with one section per table::

    source = "s3://bucket/exports/export-2024-01-01/"
    staging = "s3://bucket/staging/"
    datalake = "s3://bucket/datalake/"
    workers = 8

    [tables."mydb.public.orders"]
    partition_by = ["year", "month"]
    sort_by = ["order_time"]
    transform = "SELECT *, ... AS year, ... AS month FROM snapshot"
    target_file_size = "256MB"

Tables without a section are exported unpartitioned and unsorted. Relative local paths in the file are relative
to the file's folder. Every key is checked: an unknown one is a :class:`ConfigError` naming it and the known ones.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import storage
from .config import DEFAULT_RETRIES, DEFAULT_TARGET_FILE_SIZE, default_workers
from .errors import ConfigError
from .sorting import SortKey, parse_sort_keys
from .sources.dynamodb_export import DynamoDBOptions
from .sources.folder import CsvOptions, FolderOptions, parse_column_types, parse_delimiter
from .units import parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RUN_KEYS = {
    "source": "the snapshot: a folder of data files, an RDS/Aurora export or a DynamoDB export",
    "staging": "staging root",
    "datalake": "data lake root",
    "executor": "process, inline, dask-local or dask://host:port",
    "workers": "worker processes",
    "worker_memory": "memory per worker: 4GB",
    "group_size": "most snapshot bytes per ETL group: 256MB",
    "target_file_size": "data lake file size: 128MB",
    "inspect_files": "auto, all, sample or none",
    "on_bad_value": "error or null",
    "publish": "historical or latest",
    "retries": "retries of a failed group",
    "snapshot_time": "when the snapshot was taken (ISO 8601) [from the export]",
    "only": "the tables to run: a list of names",
    "table_name": "a folder source's database.table",
    "count_text_records": "a folder source: read text files to count records (true) or let ETL count them",
    "dynamodb_maps": "a DynamoDB export's map attributes (M): struct or json",
}
CSV_KEYS = {"delimiter", "header", "column_names", "column_types"}
TABLE_KEYS = {"partition_by", "sort_by", "transform", "target_file_size", "group_size"}
PATH_KEYS = ("source", "staging", "datalake")


@dataclass(frozen=True)
class TableSettings:
    """How one table becomes a data lake; the defaults export it unpartitioned and unsorted, as it is."""

    partition_by: tuple[str, ...] = ()
    sort_by: tuple[SortKey, ...] = ()
    transform: str | None = None
    target_file_size: int | None = None
    """``None``: the run's ``target_file_size``."""
    group_size: int | None = None
    """``None``: the run's ``group_size``."""


@dataclass(frozen=True)
class SourceRunConfig:
    """A run over every table of a source (or those in ``only``)."""

    source: str
    staging: str
    """A folder source's staging root; an export's tables each get ``<staging>/<database>/<table>/snapshot=<time>/``."""
    datalake: str
    """A folder source's data lake; an export's tables each get ``<datalake>/<database>/<table>/``."""
    executor: str = "process"
    workers: int = field(default_factory=default_workers)
    worker_memory: int | None = None
    group_size: int | None = None
    target_file_size: int = DEFAULT_TARGET_FILE_SIZE
    inspect_files: str = "auto"
    on_bad_value: str = "error"
    publish: str = "historical"
    retries: int = DEFAULT_RETRIES
    snapshot_time: str | None = None
    """``None``: each table's from the source (an export says when it was taken)."""
    only: tuple[str, ...] = ()
    """Table names to run; empty: every table."""
    folder: FolderOptions = field(default_factory=FolderOptions)
    dynamodb_maps: str = "struct"
    """A DynamoDB export's map attributes: ``struct`` (one field per key seen) or ``json`` (JSON text)."""
    tables: Mapping[str, TableSettings] = field(default_factory=dict)
    """``[tables."<name>"]`` sections, by table name."""
    table_overrides: Mapping[str, Any] = field(default_factory=dict)
    """:class:`TableSettings` fields given on the command line: they apply to every table run."""

    def settings_for(self, name: str) -> TableSettings:
        return replace(self.tables.get(name, TableSettings()), **self.table_overrides)


# ---- values: each checked and converted once, from the file or the command line ------------------------------


def _names(value: Any, where: str) -> tuple[str, ...]:
    """A list of names, or one comma-separated string of them."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(f"{where} must be a list of names (or one comma-separated string), got {value!r}")


def _size(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f'{where} must be a size such as "128MB" or a number of bytes, got {value!r}')
    try:
        return parse_size(str(value))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _typed(value: Any, kind: type, where: str, example: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {example}, got {value!r}")
    return value


def run_value(key: str, value: Any, where: str) -> Any:
    """One run setting (a top-level key, or ``csv_<key>``) checked and converted."""
    if key in (
        "source",
        "staging",
        "datalake",
        "executor",
        "inspect_files",
        "on_bad_value",
        "publish",
        "snapshot_time",
        "table_name",
    ):
        return _typed(value, str, where, "a string")
    if key == "dynamodb_maps":
        return DynamoDBOptions(_typed(value, str, where, "struct or json")).maps
    if key in ("workers", "retries"):
        number = _typed(value, int, where, "a whole number")
        if number < (1 if key == "workers" else 0):
            raise ConfigError(f"{where} must be at least {1 if key == 'workers' else 0}, got {number}")
        return number
    if key in ("worker_memory", "group_size", "target_file_size"):
        return _size(value, where)
    if key == "only":
        return _names(value, where)
    if key in ("count_text_records", "csv_header"):
        return _typed(value, bool, where, "true or false")
    if key == "csv_delimiter":
        return parse_delimiter(_typed(value, str, where, "one character"))
    if key == "csv_column_names":
        return _names(value, where)
    if key == "csv_column_types":
        if isinstance(value, dict):
            value = ",".join(f"{k}={_typed(v, str, f'{where}.{k}', 'a type name')}" for k, v in value.items())
        try:
            return parse_column_types(_typed(value, str, where, 'a table such as {id = "int64"}'))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    raise ConfigError(f"unknown setting {where}")  # pragma: no cover - keys are checked before


def table_settings(values: Mapping[str, Any], where: str) -> TableSettings:
    unknown = sorted(set(values) - TABLE_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))} in {where} (known: {', '.join(sorted(TABLE_KEYS))})"
        )
    settings: dict[str, Any] = {}
    if "partition_by" in values:
        settings["partition_by"] = _names(values["partition_by"], f"{where}.partition_by")
    if "sort_by" in values:
        settings["sort_by"] = parse_sort_keys(",".join(_names(values["sort_by"], f"{where}.sort_by")))
    if "transform" in values:
        settings["transform"] = _typed(values["transform"], str, f"{where}.transform", "Polars SQL or module:function")
    for key in ("target_file_size", "group_size"):
        if key in values:
            settings[key] = _size(values[key], f"{where}.{key}")
    return TableSettings(**settings)


@dataclass(frozen=True)
class ConfigFile:
    """A parsed ``dbsnaplake.toml``: run settings (``csv_*`` for the ``[csv]`` section) and table sections."""

    uri: str
    settings: Mapping[str, Any]
    tables: Mapping[str, TableSettings]


def parse_config(text: str, uri: str = "dbsnaplake.toml") -> ConfigFile:
    """Parse and check a TOML config; relative local paths are made relative to ``uri``'s folder."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{uri} is not valid TOML: {exc}") from None
    name = storage.base_name(uri)
    known = sorted([*RUN_KEYS, "csv", "tables"])
    unknown = sorted(set(raw) - set(known))
    if unknown:
        hint = ' — per-table settings go in [tables."<database>.<table>"]' if set(unknown) & TABLE_KEYS else ""
        raise ConfigError(f"unknown key(s) {', '.join(map(repr, unknown))} in {name} (known: {', '.join(known)}){hint}")
    settings = {key: run_value(key, value, f"{name}: {key}") for key, value in raw.items() if key in RUN_KEYS}
    csv = _typed(raw.get("csv", {}), dict, f"{name}: [csv]", "a table: [csv]")
    unknown = sorted(set(csv) - CSV_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))} in [csv] of {name} (known: {', '.join(sorted(CSV_KEYS))})"
        )
    settings.update({f"csv_{k}": run_value(f"csv_{k}", v, f"{name}: csv.{k}") for k, v in csv.items()})
    base = storage.parent(storage.normalize_uri(uri))
    for key in PATH_KEYS:
        value = settings.get(key)
        if value and not storage.is_s3(value) and not value.startswith(("/", "~", "file://")):
            settings[key] = storage.join(base, value) if storage.is_s3(base) else os.path.join(base, value)
    tables = _typed(raw.get("tables", {}), dict, f"{name}: [tables]", 'sections such as [tables."mydb.orders"]')
    parsed = {
        table: table_settings(_typed(values, dict, f"{name}: tables.{table}", "a table"), f'[tables."{table}"]')
        for table, values in tables.items()
    }
    return ConfigFile(uri, settings, parsed)


def load_config(uri: str) -> ConfigFile:
    try:
        text = storage.read_bytes(storage.normalize_uri(uri)).decode()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {uri}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {uri} is not UTF-8 text") from None
    return parse_config(text, uri)


def folder_options(settings: Mapping[str, Any]) -> FolderOptions:
    """A folder source's options from settings (``table_name``, ``count_text_records``, ``csv_*``)."""
    return FolderOptions(
        name=settings.get("table_name"),
        csv=CsvOptions(
            delimiter=settings.get("csv_delimiter"),
            header=settings.get("csv_header"),
            column_names=settings.get("csv_column_names", ()),
            column_types=settings.get("csv_column_types", ()),
        ),
        count_text_records=settings.get("count_text_records", True),
    )


def source_run_config(
    file: ConfigFile | None,
    flags: Mapping[str, Any],
    table_overrides: Mapping[str, Any] | None = None,
) -> SourceRunConfig:
    """The file's settings with ``flags`` (command-line values, converted by :func:`run_value`) on top."""
    merged = {**(file.settings if file else {}), **flags}
    for key, option in (("source", "--source"), ("staging", "--staging"), ("datalake", "--datalake")):
        if not merged.get(key):
            where = f' or set {key} = "..." in {file.uri}' if file else " (or set it in a --config file)"
            raise ConfigError(f"no {key} given: pass {option}{where}")
    folder = folder_options(merged)
    run = {k: v for k, v in merged.items() if k in RUN_KEYS and k not in ("table_name", "count_text_records")}
    return SourceRunConfig(
        **run, folder=folder, tables=dict(file.tables) if file else {}, table_overrides=dict(table_overrides or {})
    )
