"""Every setting, declared once: a dataclass field with its type (``Literal`` for modes), default, help, command-line
flag and TOML key. The CLI's options (:mod:`dbsnaplake.cli.options`), the TOML file's keys
(:mod:`dbsnaplake.config.file`) and the checks below are all derived from these fields.

- :class:`TableSettings`: how one table becomes a data lake (``[tables."db.table"]`` in the TOML file).
- :class:`RunSettings`: how a run works (top-level TOML keys), shared by every table of a run.
- :class:`Roots`, :class:`SourceSettings`: where a run reads and writes, and how a snapshot source is read.
- :class:`PipelineConfig`: one table's run: table and run settings, its roots and its snapshot manifest. It travels
  to every worker and is stored in the plan (``to_dict``/``from_dict``), so stage commands read it from there.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from dbsnaplake import storage
from dbsnaplake.errors import ConfigError, TransformError
from dbsnaplake.layout import PublishMode, S3Location
from dbsnaplake.records import SortKey, parse_sort_keys
from dbsnaplake.units import format_size, parse_size

MiB = 1024**2
DEFAULT_TARGET_FILE_SIZE = 128 * MiB
InspectMode = Literal["auto", "all", "sample", "none"]
OnBadValue = Literal["error", "null"]
DynamoDBMaps = Literal["struct", "json"]
TransformScope = Literal["chunk", "group"]
ON_BAD_VALUE: tuple[str, ...] = typing.get_args(OnBadValue)
INSPECT_MODES: tuple[str, ...] = typing.get_args(InspectMode)
PUBLISH_MODES: tuple[str, ...] = typing.get_args(PublishMode)
EXECUTORS = ("process", "inline", "dask-local", "dask://HOST:PORT")


def default_workers() -> int:
    return os.cpu_count() or 1


def total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 1024**3


# ---- value types ----------------------------------------------------------------------------------------------


def parse_names(value: Any, where: str) -> tuple[str, ...]:
    """A list of names, or one comma-separated string of them."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(f"{where} must be a list of names (or one comma-separated string), got {value!r}")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def _size(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f'{where} must be a size such as "128MB" or a number of bytes, got {value!r}')
    try:
        return parse_size(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _sort_keys(value: Any, where: str) -> tuple[SortKey, ...]:
    if isinstance(value, tuple) and all(isinstance(v, SortKey) for v in value):
        return value
    return parse_sort_keys(",".join(parse_names(value, where)))


# ---- the declaration of a setting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """What a dataclass field says about itself as a setting (its ``metadata["setting"]``)."""

    help: str
    flag: str | None
    """The command-line flag (``--workers``; ``--x/--no-x`` for a switch); ``None``: not on the command line."""
    toml: str | None
    """The key in the TOML file (``workers``; ``csv.delimiter``); ``None``: not in the file."""
    parse: Callable[[Any, str], Any] | None
    """Value from the command line (text) or the TOML file → typed value; ``None``: by the field's type."""
    at_least: int | None
    result: bool
    """Changes the data lake (rows, their placement, file sizes): part of the plan's fingerprint, and a stage command
    refuses a value that contradicts the plan. Other settings (workers, memory) change only the speed."""
    toml_top_level: bool
    """A table setting that may also stand at the top of the TOML file, as every table's default."""
    default_text: str | None
    """How ``--help`` shows the default, when not the default value itself."""
    metavar: str | None


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    flag: str | None = "",
    toml: str | None = "",
    parse: Callable[[Any, str], Any] | None = None,
    at_least: int | None = None,
    result: bool = False,
    toml_top_level: bool = False,
    default_text: str | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field that is a setting. ``flag=""`` / ``toml=""``: derived from the field's name."""
    meta = {"setting": Setting(help, flag, toml, parse, at_least, result, toml_top_level, default_text, metavar)}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SettingField:
    """A setting as the CLI and the TOML parser see it: a field of one of the settings classes."""

    name: str
    type: Any
    default: Any
    spec: Setting

    @property
    def flag(self) -> str | None:
        if self.spec.flag is None:
            return None
        return self.spec.flag or "--" + self.name.replace("_", "-")

    @property
    def flag_name(self) -> str | None:
        """The flag as a user types it: ``--csv-header`` for ``--csv-header/--csv-no-header``."""
        return self.flag.split("/")[0] if self.flag else None

    @property
    def toml(self) -> str | None:
        if self.spec.toml is None:
            return None
        return self.spec.toml or self.name

    @property
    def choices(self) -> tuple[str, ...] | None:
        literal = _literal_of(self.type)
        return typing.get_args(literal) if literal is not None else None

    def shown_default(self) -> str | None:
        if self.spec.default_text is not None:
            return self.spec.default_text
        value = self.default
        if value is None or value == () or isinstance(value, bool):
            return None
        return format_size(value).replace(".0 ", "").replace("iB", "B") if "size" in self.name else str(value)

    def parse(self, value: Any, where: str) -> Any:
        """A value from the command line or the TOML file, checked and converted to the field's type."""
        if value is None:
            return None
        parsed = self.spec.parse(value, where) if self.spec.parse is not None else _by_type(self.type, value, where)
        self.check(parsed, where)
        return parsed

    def check(self, value: Any, where: str) -> None:
        choices = self.choices
        if choices is not None and value not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
        if self.spec.at_least is not None and isinstance(value, int) and value < self.spec.at_least:
            raise ConfigError(f"{where} must be at least {self.spec.at_least}, got {value}")


def _literal_of(hint: Any) -> Any:
    if typing.get_origin(hint) is Literal:
        return hint
    for arg in typing.get_args(hint):
        if typing.get_origin(arg) is Literal:
            return arg
    return None


def _by_type(hint: Any, value: Any, where: str) -> Any:
    """Convert by the field's type: ``int``, ``bool``, ``str``, ``Literal``, ``tuple[str, ...]``, optionals."""
    kinds = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
    kind = kinds[0] if len(kinds) == 1 else hint
    if _literal_of(hint) is not None or kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {value!r}")
        return value
    if typing.get_origin(kind) is tuple:
        return parse_names(value, where)
    return value


S = TypeVar("S")


def setting_fields(*classes: type) -> list[SettingField]:
    """The settings declared by ``classes`` (their fields with a :func:`setting`), in declaration order."""
    found: dict[str, SettingField] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            spec = f.metadata.get("setting")
            if spec is None or f.name in found:
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            found[f.name] = SettingField(f.name, hints[f.name], default, spec)
    return list(found.values())


def check_settings(instance: Any) -> None:
    """Each setting's own check (choices, lower bounds), named by its flag."""
    for f in setting_fields(type(instance)):
        f.check(getattr(instance, f.name), f.flag_name or f.name)


# ---- the settings ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TableSettings:
    """How one table becomes a data lake. The defaults export it as it is: unpartitioned, unsorted."""

    partition_by: tuple[str, ...] = setting(
        (), help="Partition columns, outermost first, comma-separated: year,month.", parse=parse_names, result=True
    )
    sort_by: tuple[SortKey, ...] = setting(
        (), help="Sort keys: col or col:desc, comma-separated.", parse=_sort_keys, result=True
    )
    transform: str | None = setting(None, help="Polars SQL over the table 'snapshot', or module:function.", result=True)
    transform_scope: TransformScope = setting(
        "chunk",
        help="What --transform sees at once. chunk: about 32 MiB of rows (row-by-row logic: SELECT expressions, "
        "with_columns, filters); group: a whole snapshot file group as one frame (logic across rows, such as "
        "dropping duplicates within a group; groups are then sized so a whole one fits --worker-memory).",
        result=True,
    )
    target_file_size: int = setting(
        DEFAULT_TARGET_FILE_SIZE, help="Size of the data lake's files.", parse=_size, result=True, toml_top_level=True
    )
    keep_nanoseconds: bool = setting(
        False,
        flag="--keep-nanoseconds/--no-keep-nanoseconds",
        help="Keep nanosecond timestamps as nanoseconds (Spark, Trino and pyiceberg need settings to read them); "
        "by default they are stored in microseconds, and a value with nanoseconds is an error.",
        result=True,
        toml_top_level=True,
    )
    group_size: int | None = setting(
        None,
        help="Most snapshot bytes per ETL group: 256MB.",
        parse=_size,
        result=True,
        toml_top_level=True,
        default_text="from the snapshot and --worker-memory",
    )
    # ---- table formats and catalogs (issue 12) ----
    table_format: Literal["parquet", "iceberg", "delta"] = setting(
        "parquet", help="Publish as plain hive-partitioned Parquet, an Iceberg table or a Delta table.", result=True
    )
    partition_columns_in_files: bool = setting(
        False,
        flag="--partition-columns-in-files/--no-partition-columns-in-files",
        help="Keep the partition columns inside the data-lake files too (with their types), not only in the folder "
        "names; always on with --table-format iceberg, whose data files must hold them.",
        result=True,
        toml_top_level=True,
        default_text="on for iceberg",
    )
    catalog: str | None = setting(
        None,
        help="The Iceberg catalog to register the table in: sqlite:///PATH, rest+https://HOST/PATH, glue, or the name "
        "of a catalog in ~/.pyiceberg.yaml.",
        result=True,
        toml_top_level=True,
        default_text="sqlite: iceberg-catalog.db beside a local DATALAKE, ~/.dbsnaplake/ for an S3 one",
    )
    table_identifier: str | None = setting(
        None,
        help="The catalog's namespace.table for the Iceberg table.",
        result=True,
        default_text="from DATALAKE: <parent folder>.<folder>",
    )


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """How a run works; shared by every table of a run."""

    workers: int = setting(default_factory=default_workers, help="Worker processes.", at_least=1, default_text="cores")
    worker_memory: int | None = setting(
        None, help="Memory per worker: 4GB.", parse=_size, default_text="60% of RAM / workers"
    )
    executor: str = setting(
        "process", help=f"Where groups run: {', '.join(EXECUTORS)} (a Dask scheduler; needs the dask extra)."
    )
    inspect_files: InspectMode = setting(
        "auto",
        help="Snapshot files 'plan' checks: all, a sample of 1,000, none; auto = all up to 10,000 files. Parquet "
        "footers a manifest built by dbsnaplake recorded are not read again, except with all.",
    )
    on_bad_value: OnBadValue = setting(
        "error",
        help="A value that does not parse as its exported type: stop with an error, or store null and count it.",
        result=True,
    )
    publish: PublishMode = setting(
        "historical",
        help="historical: DATALAKE is this snapshot's own folder, committed by _SUCCESS; latest: DATALAKE is a "
        "static path, each snapshot goes to version=<time>/ and _latest.json is switched to it.",
        result=True,
    )
    snapshot_time: str | None = setting(
        None,
        help="When the snapshot was taken (ISO 8601); names the version.",
        result=True,
        default_text="the staging path's snapshot=..., an export's time, or now",
    )
    retries: int = setting(2, help="Retries of a failed group (exponential backoff) before the run stops.", at_least=0)
    max_partitions: int = setting(
        10_000,
        at_least=0,
        help="Refuse, before writing anything, a run whose estimated partitions (from a sample) exceed this; 0: no "
        "limit. A unique key as partition key makes a file per row.",
    )
    min_partition_size: int = setting(
        1024**2,
        parse=_size,
        help="Refuse, before writing anything, a run of more than 1,000 estimated partitions that would average under "
        "this size of Parquet each; 1 disables the check.",
        default_text="1MB",
    )
    clean_staging: bool = setting(
        False,
        flag="--clean-staging/--keep-staging",
        help="After publishing, remove the staging lake (STAGING/datalake/, as big as the lake); manifests, state "
        "and report stay, so status and report still work.",
    )
    compression: str = setting("zstd", help="Parquet codec of staging and data-lake files.", flag=None, toml=None,
                               result=True)  # fmt: skip
    # ---- Parquet + Glue: registering the published lake in the AWS Glue Data Catalog (issue 12) ----
    glue_database: str | None = setting(
        None,
        help="After publishing, register (or update) the lake as a table of this AWS Glue database (created when "
        "missing), named after the data lake's folder: column and partition types, and its partitions. Endpoint and "
        "credentials as for S3.",
        metavar="DB",
    )


@dataclass(frozen=True, kw_only=True)
class Roots:
    """Where a run keeps its state and writes its data lake."""

    staging: str | None = setting(None, help="Staging root: state, manifests and staging lake.")
    datalake: str | None = setting(None, help="Root of the final data lake.")


@dataclass(frozen=True, kw_only=True)
class SourceSettings:
    """How a snapshot source (``--source``) is read; the CSV options apply to a folder of data files."""

    source: str | None = setting(
        None,
        help="Snapshot to build the manifest(s) from: a folder of data files, an RDS/Aurora export or a DynamoDB export.",
    )
    only: tuple[str, ...] = setting((), help="With --source: the tables to run, comma-separated (default: all).")
    table_name: str | None = setting(None, help="A folder source's database.table.", default_text="parent.folder")
    count_text_records: bool = setting(
        True,
        flag="--count-text-records/--no-count-text-records",
        help="Read text files to count records now, or let the ETL stage count them as it reads them.",
    )
    hive_partitioning: bool = setting(
        True,
        flag="--hive-partitioning/--no-hive-partitioning",
        help="A folder source's key=value folders (region=eu/, as Spark writes) become columns, as DuckDB's "
        "hive_partitioning reads them (all-integer values as int64, others as strings).",
    )
    dynamodb_maps: DynamoDBMaps = setting(
        "struct", help="A DynamoDB export's map attributes (M): a struct of the keys seen, or JSON text."
    )
    csv_delimiter: str | None = setting(
        None, toml="csv.delimiter", help="CSV delimiter; \\t for TAB.", default_text="inferred: , TAB ; |",
        parse=lambda value, where: parse_delimiter(value, where),
    )  # fmt: skip
    csv_header: bool | None = setting(
        None, flag="--csv-header/--csv-no-header", toml="csv.header", help="CSV files start with a header row.",
        default_text="inferred",
    )  # fmt: skip
    csv_column_names: tuple[str, ...] = setting(
        (), toml="csv.column_names", help="CSV column names, comma-separated (replace the header)."
    )
    csv_column_types: tuple[tuple[str, str], ...] = setting(
        (), toml="csv.column_types", help="Some CSV column types: id=int64,price=decimal(12,2).",
        parse=lambda value, where: parse_column_types(value, where),
    )  # fmt: skip
    column_types: tuple[tuple[str, str], ...] = setting(
        (), help="Some column types of CSV and JSON files: id=int64,price=decimal(12,2),at=timestamp[us, UTC].",
        parse=lambda value, where: parse_column_types(value, where),
    )  # fmt: skip


def parse_delimiter(text: Any, where: str = "--csv-delimiter") -> str:
    """A one-character delimiter; ``\\t`` and ``tab`` mean TAB."""
    if not isinstance(text, str):
        raise ConfigError(f"{where} must be one character, got {text!r}")
    delimiter = "\t" if text in ("\\t", "tab", "TAB") else text
    if len(delimiter) != 1:
        raise ConfigError(f"{where}: a CSV delimiter is one character (or \\t for TAB), got {text!r}")
    return delimiter


def parse_column_types(value: Any, where: str = "--csv-column-types") -> tuple[tuple[str, str], ...]:
    """``"id=int64,price=decimal(12,2)"`` (or a TOML table) → ``(("id", "int64"), ("price", "decimal(12,2)"))``,
    the type names are checked when the files are read (:func:`dbsnaplake.frames.readers.parse_type`), before any
    manifest is written."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, Mapping):
        items = [f"{k}={v}" for k, v in value.items()]
    elif isinstance(value, str):
        items = _split_top_level(value)
    else:
        raise ConfigError(f'{where} must be a table such as {{id = "int64"}} or id=int64,..., got {value!r}')
    pairs = []
    for item in items:
        column, sep, spelled = item.partition("=")
        if not sep or not column.strip() or not spelled.strip():
            raise ConfigError(f"{where}: {item!r} is not column=type (example: id=int64,price=decimal(12,2))")
        pairs.append((column.strip(), spelled.strip()))
    return tuple(pairs)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets: ``id=int64,price=decimal(12,2)`` → two items."""
    items, depth, current = [], 0, ""
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]


@dataclass(frozen=True, kw_only=True)
class PipelineConfig(TableSettings, RunSettings):
    """Everything a stage needs to know about one table's run. Plain data: it pickles to worker processes and other
    machines, and is stored in the plan."""

    location: S3Location
    """Staging root (state, manifests, staging lake) and final data-lake root."""
    snapshot_manifest: str | None = setting(
        None,
        flag="--manifest",
        toml=None,
        parse=lambda value, where: storage.normalize_uri(_text(value, where)),
        result=True,
        help="Snapshot manifest summary JSON.",
        default_text="STAGING/manifests/manifest-summary.json",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        staging, lake = self.location.s3dir_staging, self.location.s3dir_datalake
        if storage.is_within(staging, lake) or storage.is_within(lake, staging):
            raise ConfigError(
                f"--staging {staging} and --datalake {lake} must not contain each other: use two separate folders"
            )
        if len(set(self.partition_by)) != len(self.partition_by):
            raise ConfigError(f"--partition-by names a column twice: {','.join(self.partition_by)}")
        for key in self.sort_by:
            if key.column in self.partition_by:
                raise ConfigError(
                    f"--sort-by {key.column} is a --partition-by column: every row of a partition has the same "
                    f"{key.column}, so drop it from --sort-by"
                )
        if self.publish == "latest" and "version" in (c.casefold() for c in self.partition_by):
            raise ConfigError(
                "--partition-by version collides with the version=<time>/ folders of --publish latest: rename the "
                "column in --transform (SELECT *, version AS row_version ...), or use --publish historical"
            )
        if self.table_format == "iceberg":  # an Iceberg data file holds its partition columns
            object.__setattr__(self, "partition_columns_in_files", True)
            if self.keep_nanoseconds:
                raise ConfigError(
                    "--keep-nanoseconds cannot go with --table-format iceberg: Iceberg tables (format 2) have no "
                    "nanosecond timestamps; drop --keep-nanoseconds (timestamps are then stored in microseconds)"
                )
        if self.glue_database and self.table_format != "parquet":
            raise ConfigError(
                f"--glue-database registers the plain Parquet lake as a Hive table; a {self.table_format} table is "
                "registered by its own commit: drop --glue-database"
                + (
                    " and give --catalog glue"
                    if self.table_format == "iceberg"
                    else " (Athena reads a Delta table by its location)"
                )
            )
        if self.snapshot_manifest is None:
            object.__setattr__(self, "snapshot_manifest", self.location.s3path_snapshot_manifest_summary)
        else:
            object.__setattr__(self, "snapshot_manifest", storage.normalize_uri(self.snapshot_manifest))

    @classmethod
    def of(cls, staging: str | None, datalake: str | None, **values: Any) -> PipelineConfig:
        """From the roots and setting values (those not given take their defaults)."""
        if not staging or not datalake:
            raise ConfigError(f"missing option {'--staging' if not staging else '--datalake'}: pass the folder to use")
        return cls(location=S3Location(s3uri_staging=staging, s3uri_datalake=datalake), **values)

    def require_output_columns(self, columns: Sequence[str]) -> None:
        """The partition and sort columns must be among ``columns`` (what the transform, or the snapshot, gives)."""
        needed = [("--partition-by", c) for c in self.partition_by] + [("--sort-by", k.column) for k in self.sort_by]
        for option, column in needed:
            if column not in columns:
                source = "the transform" if self.transform else "the snapshot"
                raise TransformError(
                    f"{option} column {column!r} is not produced by {source}; its columns are: {', '.join(columns)}"
                )

    @property
    def manifest_uri(self) -> str:
        assert self.snapshot_manifest is not None
        return self.snapshot_manifest

    @property
    def memory_per_worker(self) -> int:
        if self.worker_memory is not None:
            return self.worker_memory
        return int(total_memory() * 0.6 / self.workers)

    # ---- stored form -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the roots, the snapshot manifest and every setting."""
        values: dict[str, Any] = {
            "staging": self.location.s3dir_staging,
            "datalake": self.location.s3dir_datalake,
        }
        for f in setting_fields(type(self)):
            value = getattr(self, f.name)
            values[f.name] = [str(k) for k in value] if f.name == "sort_by" else _json(value)
        return values

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "the plan") -> PipelineConfig:
        """The config :meth:`to_dict` gave (settings missing from ``data`` take their defaults)."""
        values = {
            f.name: f.parse(data[f.name], f"{where}: {f.name}")
            for f in setting_fields(cls)
            if f.name in data and data[f.name] is not None
        }
        return cls.of(data.get("staging"), data.get("datalake"), **values)

    def result_settings(self) -> dict[str, Any]:
        """The settings that decide the data lake (see :attr:`Setting.result`), JSON-ready."""
        stored = self.to_dict()
        chosen = {f.name: stored[f.name] for f in setting_fields(type(self)) if f.spec.result}
        return {"datalake": stored["datalake"], **chosen}

    def with_given(self, given: Mapping[str, Any], planned_in: str) -> PipelineConfig:
        """This config (the plan's) with the options a stage command was given: the roots and every setting that
        changes the result must agree with the plan; the others (workers, memory, retries) apply."""
        for flag, name, planned_root in (
            ("--staging", "staging", self.location.s3dir_staging),
            ("--datalake", "datalake", self.location.s3dir_datalake),
        ):
            root = given.get(name)
            if root is not None and storage.as_dir(root) != planned_root:
                raise ConfigError(
                    f"{flag} {root} contradicts the plan in {planned_in}, made with {flag} {planned_root}: drop the "
                    "option, or plan again ('dbsnaplake run ... --fresh')"
                )
        fields = {f.name: f for f in setting_fields(type(self))}
        for name, value in given.items():
            f = fields.get(name)
            if f is None or not f.spec.result:
                continue
            planned = getattr(self, name)
            if _json(value) != _json(planned):
                raise ConfigError(
                    f"{f.flag_name} {_shown(value)} contradicts the plan in {planned_in}, made with "
                    f"{f.flag_name} {_shown(planned)}: stage commands read their settings from the plan, so drop the "
                    "option, or plan again with the new settings ('dbsnaplake plan ...', or 'dbsnaplake run ... --fresh')"
                )
        changes = {k: v for k, v in given.items() if k in fields and not fields[k].spec.result}
        return dataclasses.replace(self, **changes) if changes else self


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    if isinstance(value, SortKey):
        return str(value)
    return value


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "(none)"
    if value is None:
        return "(none)"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1024:
        return format_size(value)
    return str(value)


def planned_config(settings: Mapping[str, Any], given: PipelineConfig | None, where: str) -> PipelineConfig:
    """The config a plan (or a group manifest's header) stored, with what a caller gave on top: settings that change
    the result must agree with the plan (see :meth:`PipelineConfig.with_given`), and so must the roots."""
    planned = PipelineConfig.from_dict(settings, where)
    if given is None:
        return planned
    values = {f.name: getattr(given, f.name) for f in setting_fields(PipelineConfig)}
    values.update(staging=given.location.s3dir_staging, datalake=given.location.s3dir_datalake)
    return planned.with_given(values, where)
