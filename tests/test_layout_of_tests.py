"""The test suite's own layout: test modules share helpers through ``tests/support/`` only, never by importing
another ``test_*.py`` module or ``conftest.py`` (pytest imports those itself; importing them again runs their
tests' module code twice and ties test modules together)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(source: str, path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``source`` (the text of ``path``), anywhere in it (inside functions
    too), relative imports resolved against the ``tests`` package; ``from X import name`` gives ``X`` and
    ``X.name`` (``name`` may be a module)."""
    package = ["tests", *path.parent.relative_to(TESTS).parts]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def is_test_module(module: str) -> bool:
    """A ``test_*`` module or ``conftest`` of the suite (``tests.…`` or, imported the rootdir way, top-level)."""
    parts = module.split(".")
    last = parts[-1]
    in_tests = len(parts) == 1 or parts[0] == "tests"
    return in_tests and (last == "conftest" or last.startswith("test_"))


def test_no_test_module_imports_another_test_module_or_conftest() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}: imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.name.startswith("test_") or path.name == "conftest.py" or "support" in path.parts
        for line, module in imported_modules(path.read_text(encoding="utf-8"), path)
        if is_test_module(module)
    ]
    assert not offenders, "import shared helpers from tests.support instead:\n" + "\n".join(offenders)


def test_the_check_sees_such_imports() -> None:
    source = (
        "from .conftest import S3_BUCKET\n"
        "from . import test_cli\n"
        "import tests.test_resume\n"
        "from .support.lake import read_lake\n"
        "from dbsnaplake import testing\n"
        "def helper():\n"
        "    from .test_cli import dbsnaplake\n"
    )
    modules = [m for _, m in imported_modules(source, TESTS / "test_probe.py") if is_test_module(m)]
    assert modules == ["tests.conftest", "tests.test_cli", "tests.test_resume", "tests.test_cli"]
    support = [m for _, m in imported_modules("from ..test_cli import x\n", TESTS / "support" / "probe.py")]
    assert "tests.test_cli" in support
