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
    [
        None,
        POLARS_OWN_ALLOCATOR_CONF,  # set by `import polars` in the process starting the workers
        f"{POLARS_OWN_ALLOCATOR_CONF},{POLARS_ALLOCATOR_CONF}",  # and a pool made before
    ],
)
def test_a_worker_keeps_freed_memory_for_reuse(monkeypatch: pytest.MonkeyPatch, inherited: str | None) -> None:
    if inherited is None:
        monkeypatch.delenv(POLARS_ALLOCATOR_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(POLARS_ALLOCATOR_VARIABLE, inherited)
    conf = worker_environment(2)[POLARS_ALLOCATOR_VARIABLE]
    assert conf == POLARS_ALLOCATOR_CONF
    # what Polars makes of it in the worker: its own settings first, ours after them
    assert _settings(f"{POLARS_OWN_ALLOCATOR_CONF},{conf}") == _settings(POLARS_ALLOCATOR_CONF)


def test_a_users_own_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POLARS_ALLOCATOR_VARIABLE, f"{POLARS_OWN_ALLOCATOR_CONF},dirty_decay_ms:100")
    monkeypatch.setenv("POLARS_MAX_THREADS", "7")
    environment = worker_environment(2)
    assert _settings(environment[POLARS_ALLOCATOR_VARIABLE])["dirty_decay_ms"] == "100"
    assert _settings(environment[POLARS_ALLOCATOR_VARIABLE])["muzzy_decay_ms"] == "0"
    assert environment["POLARS_MAX_THREADS"] == "7"


def _allocator_conf_at_start() -> str | None:
    """The variable as this process started with it (what Polars reads when it loads first thing, before any
    start-up code: ``/proc/self/environ`` keeps the environment a process was started with)."""
    with open("/proc/self/environ", "rb") as f:
        for entry in f.read().split(b"\0"):
            name, _, value = entry.decode().partition("=")
            if name == POLARS_ALLOCATOR_VARIABLE:
                return value
    return None


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="reads /proc (Linux)")
def test_a_pool_worker_starts_with_the_setting_even_when_polars_loaded_here_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import polars  # noqa: F401  (as in a run: the orchestrating process has Polars loaded)

    monkeypatch.setenv(POLARS_ALLOCATOR_VARIABLE, os.environ[POLARS_ALLOCATOR_VARIABLE])  # restored after the test
    pool = ProcessPool(1)
    try:
        started_with = pool.submit(_allocator_conf_at_start).result(timeout=120)
    finally:
        pool.shutdown()
    assert started_with is not None
    assert _settings(f"{POLARS_OWN_ALLOCATOR_CONF},{started_with}") == _settings(POLARS_ALLOCATOR_CONF)
