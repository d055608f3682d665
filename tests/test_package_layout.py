"""The package's shape, as a newcomer meets it: stages are siblings, layers stay few, stored data is read through
typed records, the public names are documented, and ``dbsnaplake --help`` does not load the data libraries."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from functools import cache
from pathlib import Path

import dbsnaplake
from dbsnaplake import api

PACKAGE = Path(dbsnaplake.__file__).parent
MAX_LAYERS = 8
STORED_JSON_READERS = {"records.py", "manifest.py"}
"""Where stored JSON is parsed (into records); sources and file readers parse foreign data (exports, user files)."""


def modules() -> dict[str, Path]:
    """``dbsnaplake.stages.etl`` → its file, for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path, module: str) -> set[str]:
    """Every dbsnaplake module ``path`` imports, anywhere in it (inside functions too)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dbsnaplake"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("dbsnaplake"):
                found.update(f"{base}.{a.name}" for a in node.names)
                found.add(base)
    known = modules()
    return {name for name in found if name in known}


def component(module: str) -> str:
    """A top-level module or subpackage: ``dbsnaplake.stages.etl`` → ``dbsnaplake.stages``."""
    parts = module.split(".")
    return ".".join(parts[:2])


def component_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in modules().items():
        if module == "dbsnaplake":
            continue  # the package's face: its names load lazily from the api
        own = component(module)
        targets = {component(t) for t in imported(path, module)} - {own, "dbsnaplake"}
        graph.setdefault(own, set()).update(targets)
    return graph


def test_no_stage_imports_another_stage() -> None:
    for module, path in modules().items():
        if module.startswith("dbsnaplake.stages."):
            others = {m for m in imported(path, module) if m.startswith("dbsnaplake.stages.") and m != module}
            assert not others, f"{module} imports {sorted(others)}: shared helpers belong in a core module"


def test_the_package_has_few_layers_and_no_cycles() -> None:
    graph = component_graph()

    @cache
    def layer(node: str, path: tuple[str, ...] = ()) -> int:
        assert node not in path, f"import cycle: {' → '.join((*path, node))}"
        return 1 + max((layer(t, (*path, node)) for t in graph.get(node, ())), default=0)

    layers = {node: layer(node) for node in graph}
    deepest = max(layers.values())
    assert deepest <= MAX_LAYERS, sorted(layers.items(), key=lambda kv: -kv[1])


def test_stored_json_is_read_through_records() -> None:
    for module, path in modules().items():
        if path.name in STORED_JSON_READERS or ".sources" in module or module.endswith("frames.readers"):
            continue
        assert "json.loads" not in path.read_text(), f"{module} parses JSON: read stored data as a record"


def test_every_public_name_has_a_docstring() -> None:
    for name in [*api.__all__, *dbsnaplake.__all__]:
        value = getattr(api, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"
    assert set(dbsnaplake.__all__) <= set(api.__all__)
    assert "Quick start" in (dbsnaplake.__doc__ or "")


def test_help_does_not_load_the_data_libraries() -> None:
    code = (
        "import sys\n"
        "from dbsnaplake.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('loaded:', [m for m in ('pyarrow', 'polars', 'obstore', 'numpy', 'matplotlib') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "loaded: []", result.stdout


EARLIER_NAMES = (
    "STAGES", "CompactGroupResult", "CompactionPlan", "ConfigError", "CsvOptions", "DbSnapLakeError", "DetectedSource",
    "EtlGroupResult", "FolderOptions", "InlineExecutor", "Manifest", "ManifestBuildResult", "MultiTableResult",
    "NoProgress", "PipelineConfig", "PlanResult", "Progress", "PublishResult", "RunLockedError", "RunResult",
    "RunStatus", "S3Location", "SchemaConflictError", "SnapshotError", "SnapshotStats", "SortKey",
    "SourceBuildResult", "SourceRunConfig", "StageError", "StageStatus", "TableRun", "TableSettings", "TableSnapshot",
    "TransformError", "ValidationError", "ValidationResult", "Version", "build_manifest", "build_source_manifests",
    "compact_group", "detect_source", "format_size", "latest_root", "list_versions", "load_config", "make_executor",
    "parse_partition_path", "parse_size", "parse_sort_keys", "partition_path", "plan_compaction", "plan_snapshot",
    "publish_snapshot", "read_manifest", "remove_old_versions", "run_etl_group", "run_pipeline", "run_source",
    "run_status", "source_run_config", "validate_datalake", "write_manifest", "write_source_manifests",
)  # fmt: skip
"""Every name ``dbsnaplake.api`` exported before the re-layer."""


def test_every_earlier_api_name_still_imports() -> None:
    missing = [name for name in EARLIER_NAMES if not hasattr(api, name)]
    assert not missing, f"dbsnaplake.api lost {missing}"
