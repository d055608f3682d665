"""Where group work runs: any ``concurrent.futures.Executor``. Inline for tests and debugging, a process pool
by default, or a Dask cluster. Workers are top-level functions from plain, picklable data (a config and a group
manifest URI) to plain data: every worker reads and writes the store itself, nothing large goes through the
scheduler."""

from __future__ import annotations

import ast
import contextlib
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.managers import SyncManager
from typing import Any, TypeGuard, TypeVar

from dbsnaplake.errors import ConfigError

T = TypeVar("T")
EXECUTORS = ("process", "inline", "dask-local", "dask://HOST:PORT")
DASK_EXTRA_HINT = "install the dask extra: pip install 'dbsnaplake[dask]'"
DASK_CONNECT_SECONDS = 30
PARENT_CHECK_SECONDS = 0.5


class InlineExecutor(Executor):
    """Runs each task at once, in this process: tracebacks and breakpoints work as usual."""

    def report_queue(self) -> Any:
        """Where tasks report progress (see :class:`dbsnaplake.progress.Report`): a plain queue, in this process."""
        return queue.SimpleQueue()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


POLARS_ALLOCATOR_VARIABLE = "_RJEM_MALLOC_CONF"
POLARS_ALLOCATOR_CONF = "dirty_decay_ms:5000,muzzy_decay_ms:0"
"""Polars' allocator (jemalloc) in a worker: memory freed stays for reuse up to 5 s before it goes back to the
system (with Polars' own setting, 0.5 s, the memory of every chunk goes back and is faulted in again: 953,000 page
faults in a 512 MiB job instead of 601,000, 2 CPU-s more of the kernel zeroing pages; peak RSS the same, 665 MB),
and then goes back at once (``muzzy_decay_ms:0``: no ``MADV_FREE`` pages, which count as resident until the system
reclaims them)."""
POLARS_OWN_ALLOCATOR_CONF = "dirty_decay_ms:500,muzzy_decay_ms:1000"
"""What ``import polars`` puts first in :data:`POLARS_ALLOCATOR_VARIABLE` (a user's value after it): a process that
imported Polars passes it on to the processes it starts."""


def allocator_conf() -> str:
    """:data:`POLARS_ALLOCATOR_VARIABLE` for a worker: :data:`POLARS_ALLOCATOR_CONF`, then a user's own settings
    (jemalloc takes the last value of a setting: the user's win), without what Polars or this put first."""
    users = os.environ.get(POLARS_ALLOCATOR_VARIABLE, "")
    while (rest := users.removeprefix(POLARS_OWN_ALLOCATOR_CONF).removeprefix(POLARS_ALLOCATOR_CONF)) != users:
        users = rest.lstrip(",")
    return ",".join(filter(None, [POLARS_ALLOCATOR_CONF, users]))


def thread_environment(threads: int) -> dict[str, str]:
    """How many threads a worker's Polars and OpenMP run (a user's own values win)."""
    return {
        "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", str(threads)),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads)),
    }


def worker_environment(threads: int) -> dict[str, str]:
    """What a worker process starts with. Polars reads its allocator's setting as it loads, which in a spawned
    worker can be before any start-up code runs (the main script is imported again): it must be in the
    environment the process starts with (a pool puts it in the starting process's own, for its workers to
    inherit; a Dask cluster is given it)."""
    return {**thread_environment(threads), POLARS_ALLOCATOR_VARIABLE: allocator_conf()}


def share_cores(threads: int) -> None:
    """Worker start-up: use ``threads`` threads in Arrow and Polars, so the workers together do not
    oversubscribe the cores (measured: ETL 10 % faster with 2 workers on 2 cores). Runs before Polars starts its
    threads."""
    os.environ.update(thread_environment(threads))
    import pyarrow as pa

    pa.set_cpu_count(threads)


def exit_with_parent(parent: int) -> None:
    """Worker start-up: end this worker when the process that started it dies (``kill -9`` of the orchestrator).
    A pool worker would otherwise wait for tasks forever: it holds its task queue's write end itself."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="dbsnaplake-parent-watch", daemon=True).start()


def warm_up() -> None:
    """A pool worker's first task (see :meth:`ProcessPool.warm_up`): import what the stages need, so the spawned
    processes' start-up (about a second of imports each) overlaps the plan instead of delaying the first group."""
    import dbsnaplake.stages.compact
    import dbsnaplake.stages.etl
    import dbsnaplake.stages.validate  # noqa: F401


def init_pool_worker(threads: int, parent: int) -> None:
    share_cores(threads)
    exit_with_parent(parent)


MAIN_GUARD = 'if __name__ == "__main__":'


def check_spawn_safe() -> None:
    """Refuse to start spawned workers from a script's top level outside ``if __name__ == "__main__":``.

    A spawned worker imports the main script again before it runs any task (as ``multiprocessing`` does for every
    ``spawn`` start): a script that runs the pipeline at its top level would run it again in every worker, where it
    dies on the run's own lock and is reported as killed. Found here, before any worker starts, from the line of the
    main script now running (as :mod:`multiprocessing.spawn` decides, ``python -m pkg`` packages are not re-run)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    path = getattr(main, "__file__", None)
    if main is None or not path or (spec is not None and spec.name and spec.name.endswith("__main__")):
        return
    frame = sys._getframe()
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return  # not called from the script's top level (a thread, a callback, an interactive session)
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return
    line = frame.f_lineno
    if not any(_is_main_guard(node) and node.lineno <= line <= (node.end_lineno or 0) for node in ast.walk(tree)):
        raise ConfigError(
            f"{path} line {line} starts dbsnaplake's worker processes at the script's top level: each worker imports "
            f"the script again and would run it again. Put the code that runs dbsnaplake under {MAIN_GUARD} (or "
            "use executor 'inline')"
        )


def _is_main_guard(node: ast.AST) -> TypeGuard[ast.If]:
    """``if __name__ == "__main__":`` (either side of the ``==``)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.comparators) != 1:
        return False
    sides = [node.test.left, node.test.comparators[0]]
    names = {s.id for s in sides if isinstance(s, ast.Name)}
    texts = {s.value for s in sides if isinstance(s, ast.Constant)}
    return isinstance(node.test.ops[0], ast.Eq) and names == {"__name__"} and texts == {"__main__"}


class ProcessPool(Executor):
    """A pool of ``workers`` spawned processes that replaces itself when a worker process dies.

    A killed worker breaks a ``ProcessPoolExecutor`` for good: its running tasks fail with
    ``BrokenProcessPool``, and so does every later ``submit``. The pipeline retries the failed groups, and this
    pool starts fresh processes for them."""

    def __init__(self, workers: int) -> None:
        check_spawn_safe()
        self._workers = workers
        self._pool = self._new_pool()
        self._manager: SyncManager | None = None
        self._unfinished: set[Future[Any]] = set()
        """Tasks submitted (other than :func:`warm_up`) that have not finished yet."""

    def warm_up(self) -> None:
        """Start every worker now (each imports the stages): called as a run starts, so the workers' start-up
        overlaps the plan instead of delaying the first group. Only saves time: a pool that cannot start them now
        starts them for the first group, as before."""
        with contextlib.suppress(BrokenProcessPool, RuntimeError):
            for _ in range(self._workers):
                self._pool.submit(warm_up)

    def report_queue(self) -> Any:
        """Where tasks report progress (see :class:`dbsnaplake.progress.Report`): a queue served by a manager
        process, which worker processes reach through the proxy pickled with each task."""
        if self._manager is not None:
            try:
                return self._manager.Queue()
            except (EOFError, OSError):  # the manager process died (killed): start another
                self._manager = None
        self._manager = SyncManager(ctx=multiprocessing.get_context("spawn"))
        self._manager.start(exit_with_parent, (os.getpid(),))  # a killed orchestrator leaves no manager behind
        return self._manager.Queue()

    def _new_pool(self) -> ProcessPoolExecutor:
        os.environ[POLARS_ALLOCATOR_VARIABLE] = allocator_conf()  # inherited by the workers: see worker_environment
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_pool_worker,
            initargs=(max(1, (os.cpu_count() or 1) // self._workers), os.getpid()),
        )

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        try:
            future = self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            future = self._pool.submit(fn, *args, **kwargs)
        self._unfinished.add(future)
        future.add_done_callback(self._unfinished.discard)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        if self._manager is not None:
            with contextlib.suppress(Exception):  # already gone if it was killed
                self._manager.shutdown()
            self._manager = None

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        # after an error or Ctrl-C, do not wait for running groups: their done-markers let a rerun skip them,
        # and a worker left running ends with this process (see exit_with_parent); idle workers (an error at plan,
        # or once every group of a stage has finished, failed ones included) are waited for, so they end cleanly
        failed = exc_type is not None
        running = any(not future.done() for future in list(self._unfinished))
        self.shutdown(wait=not failed or not running, cancel_futures=failed)


class DaskExecutor(Executor):
    """Tasks run on a Dask cluster through ``Client.get_executor()``; a worker that dies has its tasks rerun
    elsewhere by the scheduler (every group task is idempotent). With no address, a local cluster of
    ``workers`` single-threaded worker processes is started, and stopped on shutdown."""

    def __init__(self, address: str | None, workers: int) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(f"--executor dask needs Dask distributed: {DASK_EXTRA_HINT}") from None
        self._cluster = None
        if address is None:
            check_spawn_safe()
            threads = max(1, (os.cpu_count() or 1) // workers)
            self._cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: None still binds 8787
                env=worker_environment(threads),
            )
            address = self._cluster.scheduler_address
        try:
            self._client = Client(address, timeout=DASK_CONNECT_SECONDS)
        except (OSError, TimeoutError) as exc:
            if self._cluster is not None:
                self._cluster.close()
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self._executor = self._client.get_executor(pure=False)

    @property
    def dashboard_link(self) -> str | None:
        return getattr(self._client, "dashboard_link", None)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._executor.submit(fn, *args, **kwargs)  # type: ignore[no-any-return]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def report_queue(executor: Executor) -> Any | None:
    """A queue group tasks can report progress to (per file), or ``None`` where the workers cannot reach one (a Dask
    cluster, another executor): progress then advances as each group finishes."""
    if isinstance(executor, (InlineExecutor, ProcessPool)):
        return executor.report_queue()
    return None


def make_executor(kind: str, workers: int) -> Executor:
    """Build the executor named by ``--executor``.

    - ``process``: a pool of ``workers`` fresh processes (spawned, not forked: safe with Arrow's threads);
    - ``inline``: this process, one task at a time;
    - ``dask-local``: a local Dask cluster of ``workers`` processes;
    - ``dask://host:port`` (or ``tcp://host:port``): the Dask scheduler at that address.
    """
    if kind == "dask-local":
        return DaskExecutor(None, workers)
    if kind.startswith(("dask://", "tcp://")):
        return DaskExecutor("tcp://" + kind.split("://", 1)[1], workers)
    if kind == "inline":
        return InlineExecutor()
    if kind == "process":
        return ProcessPool(workers)
    raise ConfigError(f"unknown --executor {kind!r}: use one of {', '.join(EXECUTORS)}")
