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

    [csv]
    column_types = { id = "int64" }

The keys are the settings' own (:mod:`dbsnaplake.config.settings`): every key is checked, and an unknown one is a
:class:`ConfigError` naming it and the known ones. Tables without a section are exported unpartitioned and
unsorted. Relative local paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dbsnaplake import storage
from dbsnaplake.config.settings import (
    Roots,
    RunSettings,
    SettingField,
    SourceSettings,
    TableSettings,
    check_settings,
    setting_fields,
)
from dbsnaplake.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PATH_KEYS = ("source", "staging", "datalake")


@dataclass(frozen=True, kw_only=True)
class SourceRunConfig(Roots, SourceSettings, RunSettings):
    """A run over every table of a source (or those in ``only``)."""

    table_defaults: Mapping[str, Any] = field(default_factory=dict)
    """Table settings given at the top of the file (``target_file_size``, ``group_size``): every table's default."""
    tables: Mapping[str, Mapping[str, Any] | TableSettings] = field(default_factory=dict)
    """``[tables."<name>"]`` sections: the table settings each gives, by table name (a :class:`TableSettings` gives
    those that differ from the defaults)."""
    table_overrides: Mapping[str, Any] = field(default_factory=dict)
    """Table settings given on the command line: they apply to every table run."""

    def __post_init__(self) -> None:
        check_settings(self)

    def settings_for(self, name: str) -> TableSettings:
        """The table settings of table ``name``: its section's over the file's top level, the command line's over
        both; those given nowhere take :class:`TableSettings`' defaults."""
        section = self.tables.get(name, {})
        if isinstance(section, TableSettings):
            section = {f.name: v for f in setting_fields(TableSettings) if (v := getattr(section, f.name)) != f.default}
        return TableSettings(**{**self.table_defaults, **section, **self.table_overrides})

    def run_settings(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in setting_fields(RunSettings)}


def _top_level_fields() -> dict[str, SettingField]:
    fields = setting_fields(Roots, SourceSettings, RunSettings)
    fields += [f for f in setting_fields(TableSettings) if f.spec.toml_top_level]
    return {f.toml: f for f in fields if f.toml is not None}


def table_section(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The settings of a ``[tables."<name>"]`` section, checked and converted."""
    fields = {f.toml: f for f in setting_fields(TableSettings) if f.toml is not None}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))} in {where} (known: {', '.join(sorted(fields))})"
        )
    return {fields[k].name: fields[k].parse(v, f"{where}.{k}") for k, v in values.items()}


def _as_table(value: Any, where: str, example: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be {example}, got {value!r}")
    return value


@dataclass(frozen=True)
class ConfigFile:
    """A parsed ``dbsnaplake.toml``: setting values by field name, and the table sections."""

    uri: str
    settings: Mapping[str, Any]
    tables: Mapping[str, Mapping[str, Any]]


def parse_config(text: str, uri: str = "dbsnaplake.toml") -> ConfigFile:
    """Parse and check a TOML config; relative local paths are made relative to ``uri``'s folder."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{uri} is not valid TOML: {exc}") from None
    name = storage.base_name(uri)
    fields = _top_level_fields()
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "tables":
            continue
        if isinstance(value, Mapping) and any(k.startswith(f"{key}.") for k in fields):  # a section: [csv]
            known = sorted(k.split(".", 1)[1] for k in fields if k.startswith(f"{key}."))
            unknown = sorted(set(value) - set(known))
            if unknown:
                raise ConfigError(
                    f"unknown key(s) {', '.join(map(repr, unknown))} in [{key}] of {name} (known: {', '.join(known)})"
                )
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    unknown = sorted(set(flat) - set(fields))
    if unknown:
        table_keys = {f.toml for f in setting_fields(TableSettings)}
        hint = ' — per-table settings go in [tables."<database>.<table>"]' if set(unknown) & table_keys else ""
        known = sorted({k.split(".")[0] for k in fields} | {"tables"})
        raise ConfigError(f"unknown key(s) {', '.join(map(repr, unknown))} in {name} (known: {', '.join(known)}){hint}")
    settings = {fields[k].name: fields[k].parse(v, f"{name}: {k}") for k, v in flat.items()}
    base = storage.parent(storage.normalize_uri(uri))
    for key in PATH_KEYS:
        value = settings.get(key)
        if value and not storage.is_s3(value) and not value.startswith(("/", "~", "file://")):
            settings[key] = storage.join(base, value) if storage.is_s3(base) else os.path.join(base, value)
    sections = _as_table(raw.get("tables", {}), f"{name}: [tables]", 'sections such as [tables."mydb.orders"]')
    tables = {
        table: table_section(_as_table(values, f"{name}: tables.{table}", "a table"), f'[tables."{table}"]')
        for table, values in sections.items()
    }
    return ConfigFile(uri, settings, tables)


def load_config(uri: str) -> ConfigFile:
    """Read and check a TOML config file (a local path or an ``s3://`` URI)."""
    try:
        text = storage.read_bytes(storage.normalize_uri(uri)).decode()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {uri}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {uri} is not UTF-8 text") from None
    return parse_config(text, uri)


def source_run_config(
    file: ConfigFile | None, given: Mapping[str, Any], table_overrides: Mapping[str, Any] | None = None
) -> SourceRunConfig:
    """The file's settings with ``given`` (command-line values, converted) on top."""
    merged = {**(file.settings if file else {}), **given}
    for key in ("source", "staging", "datalake"):
        if not merged.get(key):
            where = f' or set {key} = "..." in {file.uri}' if file else " (or set it in a --config file)"
            raise ConfigError(f"no {key} given: pass --{key}{where}")
    table_names = {f.name for f in setting_fields(TableSettings)}
    run_names = {f.name for f in setting_fields(Roots, SourceSettings, RunSettings)}
    return SourceRunConfig(
        **{k: v for k, v in merged.items() if k in run_names},
        table_defaults={k: v for k, v in merged.items() if k in table_names},
        tables=dict(file.tables) if file else {},
        table_overrides=dict(table_overrides or {}),
    )
