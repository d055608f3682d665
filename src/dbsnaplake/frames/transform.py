"""The user's transform: Polars SQL over the table ``snapshot``, or a ``module:function`` callable."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa

from dbsnaplake.errors import ConfigError, TransformError
from dbsnaplake.frames.types import for_polars

_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
SQL_TABLE = "snapshot"


def is_sql(spec: str) -> bool:
    return not _CALLABLE.match(spec.strip())


def _load_callable(spec: str) -> Callable[..., Any]:
    module_name, _, function_name = spec.strip().partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like uvicorn and gunicorn: modules in the working folder import
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--transform {spec!r}: cannot import module {module_name!r}: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"--transform {spec!r}: module {module_name!r} has no function {function_name!r}")
    return function  # type: ignore[no-any-return]


def _wants_lazy(function: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params:
        return False
    annotation = params[0].annotation
    return annotation is pl.LazyFrame or (isinstance(annotation, str) and annotation.endswith("LazyFrame"))


def apply_transform(spec: str | None, frame: pl.DataFrame) -> pl.DataFrame:
    """Run the transform on one DataFrame. ``None`` keeps the frame as it is."""
    if not spec:
        return frame
    try:
        if is_sql(spec):
            return pl.SQLContext({SQL_TABLE: frame}).execute(spec, eager=True)
        function = _load_callable(spec)
        result = function(frame.lazy() if _wants_lazy(function) else frame)
        if isinstance(result, pl.LazyFrame):
            return result.collect()
        if isinstance(result, pl.DataFrame):
            return result
    except ConfigError:
        raise
    except Exception as exc:
        kind = "SQL" if is_sql(spec) else f"function {spec}"
        first_line = (str(exc).strip().splitlines() or [""])[0]  # polars appends its query plan below
        raise TransformError(f"--transform {kind} failed: {type(exc).__name__}: {first_line}") from None
    raise TransformError(
        f"--transform {spec} returned {type(result).__name__}; it must return a polars DataFrame or LazyFrame"
    )


def output_schema(spec: str | None, input_schema: pa.Schema) -> pa.Schema:
    """What the transform produces (in Polars' Arrow types), found by running it on an empty frame (cheap; fails
    fast before any write)."""
    empty = pl.from_arrow(for_polars(input_schema.empty_table(), "the snapshot"))
    assert isinstance(empty, pl.DataFrame)
    return apply_transform(spec, empty).to_arrow(compat_level=pl.CompatLevel.oldest()).schema
