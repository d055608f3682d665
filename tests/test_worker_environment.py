"""What a worker process is started with: its threads, and Polars' allocator keeping freed memory for reuse (a
user's own settings win)."""

from __future__ import annotations

import os

import pytest

from dbsnaplake.run.executors import (
    POLARS_ALLOCATOR_CONF,
    POLARS_ALLOCATOR_VARIABLE,
    POLARS_OWN_ALLOCATOR_CONF,
    ProcessPool,
    worker_environment,
)


def _settings(conf: str) -> dict[str, str]:
    """jemalloc's reading of a configuration string: the last value of each setting."""
    return dict(item.split(":", 1) for item in conf.split(",") if item)


@pytest.mark.parametrize(
    "inherited",
    [None, POLARS_OWN_ALLOCATOR_CONF],  # unset; or set by `import polars` in the process starting the workers
)
def test_a_worker_keeps_freed_memory_for_reuse(monkeypatch: pytest.MonkeyPatch, inherited: str | None) -> None:
    if inherited is None:
        monkeypatch.delenv(POLARS_ALLOCATOR_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(POLARS_ALLOCATOR_VARIABLE, inherited)
    conf = worker_environment(2)[POLARS_ALLOCATOR_VARIABLE]
    # what Polars makes of it in the worker: its own settings first, ours after them
    assert _settings(f"{POLARS_OWN_ALLOCATOR_CONF},{conf}") == _settings(POLARS_ALLOCATOR_CONF)


def test_a_users_own_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POLARS_ALLOCATOR_VARIABLE, f"{POLARS_OWN_ALLOCATOR_CONF},dirty_decay_ms:100")
    monkeypatch.setenv("POLARS_MAX_THREADS", "7")
    environment = worker_environment(2)
    assert _settings(environment[POLARS_ALLOCATOR_VARIABLE])["dirty_decay_ms"] == "100"
    assert _settings(environment[POLARS_ALLOCATOR_VARIABLE])["muzzy_decay_ms"] == "0"
    assert environment["POLARS_MAX_THREADS"] == "7"


def _allocator_conf_seen_by_polars() -> str:
    import polars  # noqa: F401  (sets the variable as it loads its allocator)

    return os.environ[POLARS_ALLOCATOR_VARIABLE]


def test_a_pool_worker_started_after_polars_loaded_here_gets_the_setting() -> None:
    import polars  # noqa: F401  (as in a run: the orchestrating process has Polars loaded)

    pool = ProcessPool(1)
    try:
        seen = pool.submit(_allocator_conf_seen_by_polars).result(timeout=120)
    finally:
        pool.shutdown()
    assert _settings(seen) == _settings(POLARS_ALLOCATOR_CONF)
